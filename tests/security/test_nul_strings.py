"""A NUL character in any string of a request is a 400 naming the field, never a 500 (issue 12).

Postgres refuses U+0000 in text, so such a string used to fail at the INSERT, as an internal error. The
shared server chain now refuses it for every method of every service before the handler runs: shown here
for user and board through the gateway, and for user and noti over gRPC.
"""

from __future__ import annotations

import uuid

import grpc
import httpx
import pytest
from wealist.noti.v1 import internal_pb2, internal_pb2_grpc
from wealist.user.v1 import user_pb2, user_pb2_grpc

from tests.support import BOARD, USER, Mesh, bearer, field_violations, login, rpc_login, team


async def test_the_gateway_answers_400_naming_the_field(client: httpx.AsyncClient) -> None:
    person = await login(client, "nul")
    created = await client.post(
        f"{USER}/api/workspaces/create", headers=person.headers, json={"workspaceName": "Bad\u0000name"}
    )
    assert created.status_code == 400, created.text
    assert created.json()["error"]["field"] == "workspaceName"

    crew = await team(client)
    project = await client.post(
        f"{BOARD}/api/projects",
        headers=crew.alice.headers,
        json={"workspaceId": crew.workspace_id, "name": "Apollo", "description": "moon\u0000shot"},
    )
    assert project.status_code == 400, project.text
    assert project.json()["error"]["field"] == "description"


async def test_grpc_answers_invalid_argument_naming_the_field(mesh: Mesh) -> None:
    tokens = await rpc_login(mesh)
    users = user_pb2_grpc.UserServiceStub(mesh.channel("user"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await users.CreateWorkspace(
            user_pb2.CreateWorkspaceRequest(workspace_name="ok", workspace_description="x\x00"),
            metadata=bearer(tokens.access_token),
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value) == ["workspaceDescription"]

    # Nested strings too, here inside a Struct of another service's internal call.
    event = internal_pb2.NotificationEvent(
        type="BOARD_ASSIGNED",
        actor_id=str(uuid.uuid4()),
        target_user_id=str(uuid.uuid4()),
        workspace_id=str(uuid.uuid4()),
        resource_type="board",
        resource_id=str(uuid.uuid4()),
        resource_name="Card",
    )
    event.metadata.update({"projectName": "Apollo\x00"})
    notifications = internal_pb2_grpc.NotificationInternalServiceStub(
        mesh.channel("noti", as_workload="board")
    )
    with pytest.raises(grpc.aio.AioRpcError) as nested:
        await notifications.CreateNotification(
            internal_pb2.CreateNotificationRequest(event=event), timeout=10
        )
    assert nested.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(nested.value) == ["event.metadata.fields['projectName'].stringValue"]
