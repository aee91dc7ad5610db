"""The notification REST API through the real gateway, and the internal creation methods over mTLS."""

from __future__ import annotations

import uuid

import grpc
import httpx
import pytest
from wealist.noti.v1 import internal_pb2

from tests.noti.support import create, event, internal_stub
from tests.support import NOTI, Mesh, Person, field_violations, login

LIST = f"{NOTI}/api/notifications"
COUNT = f"{NOTI}/api/notifications/unread-count"
READ_ALL = f"{NOTI}/api/notifications/read-all"


async def _count(client: httpx.AsyncClient, person: Person, workspace: str | None = None) -> int:
    headers = person.in_workspace(workspace) if workspace else person.headers
    reply = await client.get(COUNT, headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.json()["workspaceId"] == (workspace or "")
    value: int = reply.json()["count"]
    return value


async def test_list_shape_paging_and_workspace_scope(client: httpx.AsyncClient, mesh: Mesh) -> None:
    ann = await login(client)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    made = [
        await create(mesh, event(ann.user_id, workspace=first, name="one")),
        await create(mesh, event(ann.user_id, workspace=first, name="two")),
        await create(mesh, event(ann.user_id, workspace=second, name="three")),
    ]
    assert all(result.created for result in made)
    everything = await client.get(LIST, headers=ann.headers)
    assert everything.status_code == 200, everything.text
    body = everything.json()
    assert set(body) == {"notifications", "total", "page", "limit", "hasMore"}
    assert (body["total"], body["page"], body["limit"], body["hasMore"]) == (3, 1, 20, False)
    assert [item["resourceName"] for item in body["notifications"]] == ["three", "two", "one"]
    item = body["notifications"][0]
    assert {
        "id",
        "type",
        "actorId",
        "targetUserId",
        "workspaceId",
        "resourceType",
        "resourceId",
        "resourceName",
        "metadata",
        "isRead",
        "createdAt",
    } <= set(item)
    assert "readAt" not in item
    assert item["metadata"] == {"projectId": "p-1", "projectName": "Apollo"}
    assert (item["type"], item["targetUserId"], item["isRead"]) == ("BOARD_ASSIGNED", ann.user_id, False)

    scoped = (await client.get(LIST, headers=ann.in_workspace(first))).json()
    assert [item["resourceName"] for item in scoped["notifications"]] == ["two", "one"]
    paged = (await client.get(LIST, params={"page": 2, "limit": 1}, headers=ann.headers)).json()
    assert (paged["total"], paged["page"], paged["limit"], paged["hasMore"]) == (3, 2, 1, True)
    assert [item["resourceName"] for item in paged["notifications"]] == ["two"]
    fallback = (await client.get(LIST, params={"page": 0, "limit": 500}, headers=ann.headers)).json()
    assert (fallback["page"], fallback["limit"]) == (1, 20)


async def test_counts_stay_right_through_create_read_read_all_and_delete(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    ann = await login(client)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    assert await _count(client, ann) == 0
    assert await _count(client, ann, first) == 0  # both now cached
    one = (await create(mesh, event(ann.user_id, workspace=first))).notification
    two = (await create(mesh, event(ann.user_id, workspace=first))).notification
    await create(mesh, event(ann.user_id, workspace=second))
    assert (await _count(client, ann), await _count(client, ann, first)) == (3, 2)

    read = await client.patch(f"{LIST}/{one.id}/read", headers=ann.headers)
    assert read.status_code == 200, read.text
    assert read.json()["isRead"] is True
    assert read.json()["readAt"]
    again = await client.patch(f"{LIST}/{one.id}/read", headers=ann.headers)
    assert again.json()["readAt"] == read.json()["readAt"]
    assert (await _count(client, ann), await _count(client, ann, first)) == (2, 1)
    unread = (await client.get(LIST, params={"unreadOnly": "true"}, headers=ann.headers)).json()
    assert unread["total"] == 2

    scoped = await client.post(READ_ALL, headers=ann.in_workspace(second))
    assert scoped.status_code == 200, scoped.text
    assert scoped.json() == {"markedAsRead": 1}
    assert (await _count(client, ann), await _count(client, ann, second)) == (1, 0)

    # On the same keep-alive connection as the next calls: a 204 must come without a body.
    gone = await client.delete(f"{LIST}/{two.id}", headers=ann.headers)
    assert gone.status_code == 204, gone.text
    assert gone.content == b""
    assert (await _count(client, ann), await _count(client, ann, first)) == (0, 0)
    assert (await client.delete(f"{LIST}/{two.id}", headers=ann.headers)).status_code == 404

    await create(mesh, event(ann.user_id, workspace=first))
    await create(mesh, event(ann.user_id, workspace=second))
    assert await _count(client, ann) == 2
    everything = await client.post(READ_ALL, headers=ann.headers)
    assert everything.json() == {"markedAsRead": 2}
    assert (await _count(client, ann), await _count(client, ann, first)) == (0, 0)


async def test_another_users_notification_is_not_found(client: httpx.AsyncClient, mesh: Mesh) -> None:
    ann, bob = await login(client), await login(client)
    mine = (await create(mesh, event(ann.user_id))).notification
    assert (await client.patch(f"{LIST}/{mine.id}/read", headers=bob.headers)).status_code == 404
    assert (await client.delete(f"{LIST}/{mine.id}", headers=bob.headers)).status_code == 404
    assert (await client.get(LIST, headers=bob.headers)).json()["total"] == 0
    assert (await client.post(READ_ALL, headers=bob.headers)).json() == {"markedAsRead": 0}
    still = (await client.get(LIST, headers=ann.headers)).json()["notifications"]
    assert [(item["id"], item["isRead"]) for item in still] == [(mine.id, False)]


async def test_bad_input_is_refused_naming_the_field(client: httpx.AsyncClient) -> None:
    ann = await login(client)
    for url in (LIST, COUNT):
        reply = await client.get(url, headers=ann.in_workspace("not-a-uuid"))
        assert reply.status_code == 400
        assert reply.json()["error"]["field"] == "X-Workspace-Id"
    reply = await client.patch(f"{LIST}/nope/read", headers=ann.headers)
    assert reply.status_code == 400
    assert reply.json()["error"]["field"] == "notificationId"
    assert (await client.get(LIST)).status_code == 401


async def test_internal_methods_are_refused_to_the_gateway(mesh: Mesh) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await internal_stub(mesh, as_workload="gateway").CreateNotification(
            internal_pb2.CreateNotificationRequest(event=event(str(uuid.uuid4()))), timeout=10
        )
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_the_actor_is_not_notified_of_their_own_action(client: httpx.AsyncClient, mesh: Mesh) -> None:
    ann = await login(client)
    result = await create(mesh, event(ann.user_id, actor=ann.user_id))
    assert not result.created
    assert not result.HasField("notification")
    assert (await client.get(LIST, headers=ann.headers)).json()["total"] == 0


async def test_the_same_idempotency_key_creates_one(client: httpx.AsyncClient, mesh: Mesh) -> None:
    ann, bob = await login(client), await login(client)
    key = f"board-assign-{uuid.uuid4()}"
    first = await create(mesh, event(ann.user_id, key=key))
    second = await create(mesh, event(ann.user_id, key=key))
    assert (first.created, second.created) == (True, False)
    assert second.notification.id == first.notification.id
    # The key is per target: the same key for another user is another notification.
    batch = await internal_stub(mesh, as_workload="chat").CreateNotifications(
        internal_pb2.CreateNotificationsRequest(
            events=[event(ann.user_id, key=key), event(bob.user_id, key=key), event(bob.user_id, key=key)]
        ),
        timeout=10,
    )
    assert [result.created for result in batch.results] == [False, True, False]
    assert batch.created == 1
    assert (await client.get(LIST, headers=ann.headers)).json()["total"] == 1
    assert (await client.get(LIST, headers=bob.headers)).json()["total"] == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "SOMETHING_ELSE"}, "type"),
        ({"resource_type": "planet"}, "resourceType"),
        ({"actor_id": "00000000-0000-0000-0000-000000000000"}, "actorId"),
        ({"workspace_id": "x"}, "workspaceId"),
        ({"resource_name": "n" * 256}, "resourceName"),
    ],
)
async def test_invalid_events_are_refused(mesh: Mesh, change: dict[str, str], field: str) -> None:
    item = event(str(uuid.uuid4()))
    for name, value in change.items():
        setattr(item, name, value)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create(mesh, item)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value) == [field]
    with pytest.raises(grpc.aio.AioRpcError) as in_batch:
        await internal_stub(mesh).CreateNotifications(
            internal_pb2.CreateNotificationsRequest(events=[event(str(uuid.uuid4())), item]), timeout=10
        )
    assert field_violations(in_batch.value) == [f"events[1].{field}"]
