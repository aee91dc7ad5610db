"""Who may change what on a project's boards, through the real gateway (and gRPC over mTLS).

The rule (board.proto, services/board/access.py): workspace members read every project of their
workspace; project members create and change boards; a board's author and assignee change it too; its
author, assignee or a project OWNER/ADMIN delete it; its participants comment and may leave. A refusal
is 403 ``FORBIDDEN`` in the board envelope and changes nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import redis.asyncio as aioredis
from wealist.board.v1 import events_pb2, events_pb2_grpc, project_pb2, project_pb2_grpc

from devstack import StackInfo
from services.board import events
from services.board.projects.service import current_project_key
from tests.support import (
    BOARD,
    USER,
    Mesh,
    Person,
    bearer,
    call,
    join_project,
    project,
    remove_from_workspace,
    team,
)


async def _refused(
    client: httpx.AsyncClient, verb: str, path: str, who: Person, body: dict[str, Any] | None = None
) -> str:
    """Assert a 403 FORBIDDEN in the board's error envelope; the message (what the web client shows)."""
    reply = await client.request(verb, BOARD + path, headers=who.headers, json=body)
    assert reply.status_code == 403, f"{verb} {path}: {reply.status_code} {reply.text}"
    error = reply.json()["error"]
    assert error["code"] == "FORBIDDEN", reply.text
    message: str = error["message"]
    assert message
    return message


async def _board(client: httpx.AsyncClient, who: Person, project_id: str, **fields: Any) -> Any:
    body = {"projectId": project_id, "title": "Card", "customFields": {"stage": "pending"}, **fields}
    return await call(client, "POST", "/api/boards", who, status=201, json=body)


async def _seen(client: httpx.AsyncClient, who: Person, board_id: str) -> tuple[Any, ...]:
    """What a reader sees of a board: its fields, participants and comments."""
    detail = await call(client, "GET", f"/api/boards/{board_id}", who)
    return (
        detail["title"],
        detail["customFields"],
        detail.get("assigneeId"),
        sorted(detail["participantIds"]),
        [c["content"] for c in detail["comments"]],
    )


async def test_a_workspace_member_outside_the_project_only_reads_its_boards(
    client: httpx.AsyncClient,
) -> None:
    t = await team(client)
    pid = (await project(client, t.owner, t.workspace_id))["projectId"]
    card = await _board(client, t.owner, pid, participants=[t.bob.user_id])
    bid = card["boardId"]
    await call(client, "POST", "/api/comments", t.owner, status=201, json={"boardId": bid, "content": "mine"})
    before = await _seen(client, t.owner, bid)

    # Alice is a member of the workspace, not of the project, and the board does not name her.
    alice = t.alice
    await _refused(client, "POST", "/api/boards", alice, {"projectId": pid, "title": "Planted"})
    await _refused(client, "PUT", f"/api/boards/{bid}", alice, {"title": "Defaced"})
    moved = {"projectId": pid, "groupByFieldName": "stage", "newFieldValue": "deleted"}
    await _refused(client, "PUT", f"/api/boards/{bid}/move", alice, moved)
    await _refused(client, "DELETE", f"/api/boards/{bid}", alice)
    await _refused(client, "POST", "/api/participants", alice, {"boardId": bid, "userIds": [alice.user_id]})
    await _refused(client, "DELETE", f"/api/participants/board/{bid}/user/{t.bob.user_id}", alice)
    await _refused(client, "POST", "/api/comments", alice, {"boardId": bid, "content": "drive-by"})

    # Reading stays open to every member of the workspace (the kanban lists all its projects).
    assert [b["boardId"] for b in await call(client, "GET", f"/api/boards/project/{pid}", alice)] == [bid]
    assert await _seen(client, alice, bid) == before
    assert len(await call(client, "GET", f"/api/participants/board/{bid}", alice)) == 1
    assert len(await call(client, "GET", f"/api/comments/board/{bid}", alice)) == 1


async def test_project_members_change_boards_and_few_delete_them(client: httpx.AsyncClient) -> None:
    t = await team(client)
    pid = (await project(client, t.owner, t.workspace_id))["projectId"]
    await join_project(client, t.owner, t.bob, pid)
    owners = (await _board(client, t.owner, pid, title="Owner's"))["boardId"]

    # A project MEMBER works on anyone's board...
    await call(client, "PUT", f"/api/boards/{owners}", t.bob, json={"title": "Edited by Bob"})
    moved = {"projectId": pid, "groupByFieldName": "stage", "newFieldValue": "review"}
    await call(client, "PUT", f"/api/boards/{owners}/move", t.bob, json=moved)
    await call(
        client,
        "POST",
        "/api/participants",
        t.bob,
        status=201,
        json={"boardId": owners, "userIds": [t.alice.user_id]},
    )
    await call(
        client, "POST", "/api/comments", t.bob, status=201, json={"boardId": owners, "content": "on it"}
    )
    # ...but deletes only his own: deleting takes everyone's comments and files with it.
    await _refused(client, "DELETE", f"/api/boards/{owners}", t.bob)
    his = (await _board(client, t.bob, pid, title="Bob's"))["boardId"]
    await call(client, "DELETE", f"/api/boards/{his}", t.bob)

    # The assignee, though outside the project, changes and deletes the board assigned to them.
    assigned = (await _board(client, t.owner, pid, title="For Alice", assigneeId=t.alice.user_id))["boardId"]
    await call(client, "PUT", f"/api/boards/{assigned}", t.alice, json={"title": "Alice's now"})
    await call(client, "PUT", f"/api/boards/{assigned}/move", t.alice, json=moved)
    await call(client, "DELETE", f"/api/boards/{assigned}", t.alice)

    # An ADMIN of the project deletes any board of it.
    await call(
        client,
        "PUT",
        f"/api/projects/{pid}/members/{t.bob.user_id}/role",
        t.owner,
        json={"roleName": "ADMIN"},
    )
    await call(client, "DELETE", f"/api/boards/{owners}", t.bob)
    assert await call(client, "GET", f"/api/boards/project/{pid}", t.owner) == []


async def test_participants_comment_and_may_leave_but_do_not_run_the_board(client: httpx.AsyncClient) -> None:
    t = await team(client)
    pid = (await project(client, t.owner, t.workspace_id))["projectId"]
    bid = (await _board(client, t.owner, pid, participants=[t.alice.user_id, t.bob.user_id]))["boardId"]

    await call(client, "POST", "/api/comments", t.alice, status=201, json={"boardId": bid, "content": "seen"})
    await _refused(client, "PUT", f"/api/boards/{bid}", t.alice, {"title": "Mine now"})
    await _refused(client, "DELETE", f"/api/participants/board/{bid}/user/{t.bob.user_id}", t.alice)
    await _refused(
        client, "POST", "/api/participants", t.alice, {"boardId": bid, "userIds": [t.owner.user_id]}
    )
    # Leaving is hers to decide; afterwards she is a reader like any workspace member.
    await call(client, "DELETE", f"/api/participants/board/{bid}/user/{t.alice.user_id}", t.alice)
    await _refused(client, "POST", "/api/comments", t.alice, {"boardId": bid, "content": "again"})
    participants = await call(client, "GET", f"/api/participants/board/{bid}", t.owner)
    assert [p["userId"] for p in participants] == [t.bob.user_id]


# --- the operator identity ------------------------------------------------------------------------------


async def _watch_and_ping(mesh: Mesh, workload: str, who: Person, project_id: str) -> list[str]:
    """Open the project socket over gRPC as ``workload`` for ``who`` and ping it; once the pong is back,
    the users GetOnlineUsers lists while the socket is open."""
    stub = events_pb2_grpc.BoardEventServiceStub(mesh.channel("board", as_workload=workload))
    socket = stub.WatchProject(metadata=bearer(who.token))
    try:
        await socket.write(events_pb2.WatchProjectRequest(project_id=project_id))
        await socket.write(events_pb2.WatchProjectRequest(type="ping"))
        pong = await asyncio.wait_for(socket.read(), 5)
        assert isinstance(pong, events_pb2.WatchProjectResponse)
        assert pong.type == "pong"
        online = await stub.GetOnlineUsers(
            events_pb2.GetOnlineUsersRequest(project_id=project_id), metadata=bearer(who.token)
        )
        return list(online.online_users)
    finally:
        socket.cancel()


async def test_the_operators_project_socket_writes_no_presence(
    client: httpx.AsyncClient, mesh: Mesh, stack: StackInfo
) -> None:
    """WatchProject is declared without side effects; as debug it watches but never makes anyone present."""
    t = await team(client)
    pid = (await project(client, t.owner, t.workspace_id))["projectId"]
    rds = aioredis.Redis.from_url(stack.redis_url)
    try:
        assert await _watch_and_ping(mesh, "debug", t.alice, pid) == []
        assert await rds.exists(events.presence_key(pid)) == 0
        # The same socket through the gateway's identity is present: the checks above can fail.
        assert await _watch_and_ping(mesh, "gateway", t.alice, pid) == [t.alice.user_id]
        # Nor does the operator's init-settings become the user's current project.
        stub = project_pb2_grpc.ProjectServiceStub(mesh.channel("board", as_workload="debug"))
        await stub.GetInitSettings(
            project_pb2.GetInitSettingsRequest(project_id=pid), metadata=bearer(t.bob.token)
        )
        assert await rds.exists(current_project_key(uuid.UUID(t.bob.user_id))) == 0
    finally:
        await rds.aclose()


# --- leaving the workspace ------------------------------------------------------------------------------


async def _eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> bool:
    """Whether ``check`` holds within ``within`` seconds (the board hears of the removal asynchronously)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _members(client: httpx.AsyncClient, who: Person, project_id: str) -> dict[str, str]:
    listed = await call(client, "GET", f"/api/projects/{project_id}/members", who)
    return {m["userId"]: m["roleName"] for m in listed}


async def test_leaving_the_workspace_ends_ones_project_memberships(client: httpx.AsyncClient) -> None:
    t = await team(client)
    owner, alice, bob = t.owner, t.alice, t.bob
    shared = (await project(client, owner, t.workspace_id, "Shared", members=(alice, bob)))["projectId"]
    await call(
        client,
        "PUT",
        f"/api/projects/{shared}/members/{alice.user_id}/role",
        owner,
        json={"roleName": "ADMIN"},
    )
    hers = (await project(client, alice, t.workspace_id, "Hers", members=(bob,)))["projectId"]
    closed = (await project(client, owner, t.workspace_id, "Closed"))["projectId"]
    asked = await call(client, "POST", "/api/join-requests", alice, status=201, json={"projectId": closed})

    await remove_from_workspace(client, owner, t.workspace_id, alice)

    async def forgotten() -> bool:
        return alice.user_id not in await _members(client, owner, shared)

    assert await _eventually(forgotten), await _members(client, owner, shared)
    # Her own project passed to the workspace's owner, so it still has its one OWNER.
    assert await _members(client, owner, hers) == {owner.user_id: "OWNER", bob.user_id: "MEMBER"}
    assert (await call(client, "GET", f"/api/projects/{hers}", owner))["ownerId"] == owner.user_id
    # Her pending request went too, and cannot be approved any more.
    assert await call(client, "GET", f"/api/projects/{closed}/join-requests", owner) == []
    reply = await client.put(
        f"{BOARD}/api/join-requests/{asked['requestId']}", headers=owner.headers, json={"status": "APPROVED"}
    )
    assert reply.status_code in (400, 404), reply.text

    # Back in the workspace, she starts from nothing in its projects.
    invited = await client.post(
        f"{USER}/api/workspaces/{t.workspace_id}/members/invite",
        headers=owner.headers,
        json={"email": alice.email},
    )
    assert invited.status_code in (200, 201), invited.text
    await _refused(client, "POST", "/api/boards", alice, {"projectId": shared, "title": "As admin?"})
    await _refused(client, "PUT", f"/api/projects/{hers}", alice, {"name": "Mine again?"})
    await _refused(client, "GET", f"/api/projects/{shared}/join-requests", alice)
    await call(client, "POST", "/api/join-requests", alice, status=201, json={"projectId": shared})
