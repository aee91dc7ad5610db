"""Participants through the real gateway: 201 / 207 / 400 on add, the order of the list, removal."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support import BOARD, call, login, project, team


async def test_add_list_and_remove_participants(client: httpx.AsyncClient) -> None:
    crew = await team(client)
    carol = await login(client, "carol")
    # carol joins the team's workspace too.
    invited = await client.post(
        f"/api/svc/user/api/workspaces/{crew.workspace_id}/members/invite",
        headers=crew.owner.headers,
        json={"email": carol.email},
    )
    assert invited.status_code in (200, 201), invited.text
    pid = (await project(client, crew.owner, crew.workspace_id, members=(crew.alice, crew.bob)))["projectId"]
    board = await call(
        client, "POST", "/api/boards", crew.alice, status=201, json={"projectId": pid, "title": "Card"}
    )
    bid = board["boardId"]

    everyone = await call(
        client,
        "POST",
        "/api/participants",
        crew.alice,
        status=201,
        json={"boardId": bid, "userIds": [crew.bob.user_id, crew.owner.user_id, crew.bob.user_id]},
    )
    assert everyone["totalRequested"] == 2
    assert everyone["totalSuccess"] == 2
    assert everyone["totalFailed"] == 0
    assert [(r["userId"], r["success"]) for r in everyone["results"]] == [
        (crew.bob.user_id, True),
        (crew.owner.user_id, True),
    ]

    # Some added, some not: 207 with a reason per user.
    reply = await client.post(
        f"{BOARD}/api/participants",
        headers=crew.alice.headers,
        json={"boardId": bid, "userIds": [crew.bob.user_id, carol.user_id, crew.outsider.user_id]},
    )
    assert reply.status_code == 207, reply.text
    body: dict[str, Any] = reply.json()
    partial = body["data"]  # enveloped like every board reply (the original sent this one bare)
    assert partial["totalRequested"] == 3
    assert partial["totalSuccess"] == 1
    assert partial["totalFailed"] == 2
    results = {r["userId"]: r for r in partial["results"]}
    assert results[crew.bob.user_id]["error"] == "Participant already exists"
    assert results[carol.user_id]["success"] is True
    assert results[crew.outsider.user_id]["error"] == "User is not a member of this workspace"
    assert results[crew.outsider.user_id]["success"] is False

    # None added: 400.
    refused = await client.post(
        f"{BOARD}/api/participants",
        headers=crew.alice.headers,
        json={"boardId": bid, "userIds": [crew.bob.user_id, crew.outsider.user_id]},
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["message"] == "All participants failed to add"

    listed = await call(client, "GET", f"/api/participants/board/{bid}", crew.bob)
    assert [p["userId"] for p in listed] == [crew.bob.user_id, crew.owner.user_id, carol.user_id]
    assert all(p["boardId"] == bid and p["id"] and p["createdAt"] for p in listed)
    detail = await call(client, "GET", f"/api/boards/{bid}", crew.bob)
    assert detail["participantIds"] == [crew.bob.user_id, crew.owner.user_id, carol.user_id]

    assert (
        await call(client, "DELETE", f"/api/participants/board/{bid}/user/{crew.owner.user_id}", crew.bob)
        is None
    )
    listed = await call(client, "GET", f"/api/participants/board/{bid}", crew.bob)
    assert [p["userId"] for p in listed] == [crew.bob.user_id, carol.user_id]
    gone = await client.delete(
        f"{BOARD}/api/participants/board/{bid}/user/{crew.owner.user_id}", headers=crew.bob.headers
    )
    assert gone.status_code == 404
    assert gone.json()["error"]["message"] == "Participant not found"


async def test_participant_requests_are_validated(client: httpx.AsyncClient) -> None:
    crew = await team(client)
    pid = (await project(client, crew.owner, crew.workspace_id, members=(crew.alice, crew.bob)))["projectId"]
    board = await call(
        client, "POST", "/api/boards", crew.alice, status=201, json={"projectId": pid, "title": "Card"}
    )
    bid = board["boardId"]
    for body, field in (
        ({"boardId": bid, "userIds": []}, "userIds"),
        ({"boardId": bid, "userIds": [str(uuid.uuid4()) for _ in range(51)]}, "userIds"),
        ({"boardId": bid, "userIds": ["nobody"]}, "userIds"),
        ({"boardId": "nope", "userIds": [crew.bob.user_id]}, "boardId"),
    ):
        reply = await client.post(f"{BOARD}/api/participants", headers=crew.alice.headers, json=body)
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["field"] == field
    missing = await client.post(
        f"{BOARD}/api/participants",
        headers=crew.alice.headers,
        json={"boardId": str(uuid.uuid4()), "userIds": [crew.bob.user_id]},
    )
    assert missing.status_code == 404
    assert await call(client, "GET", f"/api/participants/board/{bid}", crew.alice) == []
