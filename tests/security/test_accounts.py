"""Account security (issue 12) through the real entry points: the gateway over HTTP, the services over mTLS.

- A logout ends the whole login session, whatever the body holds: the web client sends only its Bearer
  access token, and its refresh token (and every rotation of it) must stop working with it.
"""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest
from wealist.board.v1 import project_pb2, project_pb2_grpc
from wealist.user.v1 import user_pb2, user_pb2_grpc

from tests.board.support import BOARD, USER, Person, client, login, project, workspace
from tests.conftest import Mesh
from tests.integration.helpers import bearer, error_reason

pytestmark = pytest.mark.asyncio
__all__ = ["client"]

AUTH = "/api/svc/auth"


def _code(reply: httpx.Response) -> Any:
    return reply.json()["error"]["code"]


async def _test_login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    reply = await client.post(f"{AUTH}/api/test/token", json={"email": email})
    assert reply.status_code == 200, reply.text
    body: dict[str, str] = reply.json()
    return body


async def _refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(f"{AUTH}/api/auth/refresh", json={"refreshToken": refresh_token})


# --- logout ends the session ----------------------------------------------------------------------------


async def test_logout_with_only_the_bearer_token_ends_the_whole_session(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    owner = await login(client, "logout")
    workspace_id = await workspace(client, owner)
    project_id = (await project(client, owner, workspace_id))["projectId"]
    first = await _test_login(client, owner.email)
    rotated = await _refresh(client, first["refreshToken"])
    assert rotated.status_code == 200, rotated.text
    session = rotated.json()
    other_device = await _test_login(client, owner.email)

    # Exactly what the web client sends: the access token, no body.
    out = await client.post(
        f"{AUTH}/api/auth/logout", headers={"Authorization": f"Bearer {session['accessToken']}"}
    )
    assert out.status_code == 200, out.text

    # The refresh token of the session no longer refreshes ...
    refused = await _refresh(client, session["refreshToken"])
    assert refused.status_code == 401, refused.text
    assert _code(refused) == "SESSION_ENDED"
    # ... and the session's earlier access token, never presented to logout, is refused at the edge ...
    earlier = Person(owner.user_id, owner.email, first["accessToken"])
    for path in (f"{USER}/api/users/me", f"{BOARD}/api/projects/{project_id}"):
        reply = await client.get(path, headers=earlier.headers)
        assert reply.status_code == 401, f"{path}: {reply.text}"
        assert _code(reply) == "SESSION_ENDED"
    # ... and by the services themselves, behind the gateway.
    with pytest.raises(grpc.aio.AioRpcError) as by_board:
        await project_pb2_grpc.ProjectServiceStub(mesh.channel("board")).GetProject(
            project_pb2.GetProjectRequest(project_id=project_id), metadata=bearer(first["accessToken"])
        )
    assert by_board.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(by_board.value) == "SESSION_ENDED"
    with pytest.raises(grpc.aio.AioRpcError) as by_user:
        await user_pb2_grpc.UserServiceStub(mesh.channel("user")).GetMyUser(
            user_pb2.GetMyUserRequest(), metadata=bearer(session["accessToken"])
        )
    assert by_user.value.code() is grpc.StatusCode.UNAUTHENTICATED

    # Another login of the same account is another session: untouched.
    me = await client.get(
        f"{USER}/api/users/me", headers={"Authorization": f"Bearer {other_device['accessToken']}"}
    )
    assert me.status_code == 200, me.text
    renewed = await _refresh(client, other_device["refreshToken"])
    assert renewed.status_code == 200, renewed.text
