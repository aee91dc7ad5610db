"""Board notifications reach noti: read back through noti's REST API of each recipient.

Each event reaches each of its recipients once, carries the caller as actorId, and never reaches the
caller; BOARD_UPDATED lists the changes with custom fields as option labels.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

from devstack import StackInfo
from tests.support import Person, call, project, team

NOTI = "/api/svc/noti/api/notifications"


async def _inbox(client: httpx.AsyncClient, who: Person, board_id: str) -> list[dict[str, Any]]:
    reply = await client.get(NOTI, headers=who.headers, params={"page": 1, "limit": 100})
    assert reply.status_code == 200, reply.text
    items: list[dict[str, Any]] = reply.json()["notifications"]
    return [item for item in items if item["resourceId"] == board_id]


async def _wait_for(
    client: httpx.AsyncClient, who: Person, board_id: str, kind: str, count: int = 1
) -> list[dict[str, Any]]:
    """``who``'s notifications of ``kind`` about the board once ``count`` have arrived (10 s at most)."""
    async with asyncio.timeout(10):
        while True:
            found = [item for item in await _inbox(client, who, board_id) if item["type"] == kind]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.1)


def _kinds(items: list[dict[str, Any]]) -> list[str]:
    return sorted(item["type"] for item in items)


async def test_board_notifications_reach_the_people_of_the_board(client: httpx.AsyncClient) -> None:
    crew = await team(client)
    owner, alice, bob = crew.owner, crew.alice, crew.bob
    pid = (await project(client, owner, crew.workspace_id, "Rocket", members=(crew.alice, crew.bob)))[
        "projectId"
    ]
    settings = await call(client, "GET", f"/api/projects/{pid}/init-settings", alice)
    labels = {
        option["optionValue"]: option["optionLabel"]
        for field in settings["fields"]
        if field["fieldId"] == "stage"
        for option in field["options"]
    }

    # alice creates a card for bob, with bob, the owner and herself taking part.
    board = await call(
        client,
        "POST",
        "/api/boards",
        alice,
        status=201,
        json={
            "projectId": pid,
            "title": "Fuel check",
            "assigneeId": bob.user_id,
            "participants": [bob.user_id, owner.user_id, alice.user_id],
            "customFields": {"stage": "pending"},
        },
    )
    bid = board["boardId"]
    (assigned,) = await _wait_for(client, bob, bid, "BOARD_ASSIGNED")
    assert assigned["actorId"] == alice.user_id
    assert assigned["targetUserId"] == bob.user_id
    assert assigned["workspaceId"] == crew.workspace_id
    assert assigned["resourceType"] == "board"
    assert assigned["resourceName"] == "Fuel check"
    assert assigned["metadata"]["projectId"] == pid
    assert assigned["metadata"]["projectName"] == "Rocket"
    await _wait_for(client, bob, bid, "BOARD_PARTICIPANT_ADDED")
    (added,) = await _wait_for(client, owner, bid, "BOARD_PARTICIPANT_ADDED")
    assert added["actorId"] == alice.user_id
    assert _kinds(await _inbox(client, bob, bid)) == ["BOARD_ASSIGNED", "BOARD_PARTICIPANT_ADDED"]
    assert _kinds(await _inbox(client, owner, bid)) == ["BOARD_PARTICIPANT_ADDED"]
    assert await _inbox(client, alice, bid) == []

    # bob edits: the others hear of it (labels, not values), bob does not.
    await call(
        client,
        "PUT",
        f"/api/boards/{bid}",
        bob,
        json={"title": "Fuel and oxygen check", "customFields": {"stage": "in_progress"}},
    )
    (updated,) = await _wait_for(client, alice, bid, "BOARD_UPDATED")
    assert updated["actorId"] == bob.user_id
    assert updated["resourceName"] == "Fuel and oxygen check"
    changes = {change["field"]: change for change in updated["metadata"]["changes"]}
    assert changes["title"] == {
        "field": "title",
        "oldValue": "Fuel check",
        "newValue": "Fuel and oxygen check",
    }
    assert changes["stage"] == {
        "field": "stage",
        "oldValue": labels["pending"],
        "newValue": labels["in_progress"],
    }
    (for_owner,) = await _wait_for(client, owner, bid, "BOARD_UPDATED")
    assert for_owner["actorId"] == bob.user_id
    assert [item for item in await _inbox(client, bob, bid) if item["type"] == "BOARD_UPDATED"] == []

    # The owner comments: the assignee and the participants hear of it, the owner does not.
    comment = await call(
        client, "POST", "/api/comments", owner, status=201, json={"boardId": bid, "content": "Go " * 60}
    )
    (noted,) = await _wait_for(client, bob, bid, "BOARD_COMMENT_ADDED")
    assert noted["actorId"] == owner.user_id
    assert noted["metadata"]["commentId"] == comment["commentId"]
    assert len(noted["metadata"]["commentPreview"]) <= 100
    assert noted["metadata"]["commentPreview"].startswith("Go Go")
    await _wait_for(client, alice, bid, "BOARD_COMMENT_ADDED")
    assert [item for item in await _inbox(client, owner, bid) if item["type"] == "BOARD_COMMENT_ADDED"] == []

    # alice drags the card: a BOARD_UPDATED with the stage change, to bob and the owner.
    await call(
        client,
        "PUT",
        f"/api/boards/{bid}/move",
        alice,
        json={"projectId": pid, "groupByFieldName": "stage", "newFieldValue": "review"},
    )
    moves = await _wait_for(client, bob, bid, "BOARD_UPDATED")
    (move,) = [item for item in moves if item["actorId"] == alice.user_id]
    assert move["metadata"]["changes"] == [
        {"field": "stage", "oldValue": labels["in_progress"], "newValue": labels["review"]}
    ]
    await _wait_for(client, owner, bid, "BOARD_UPDATED", count=2)

    # Nothing arrived twice, and nobody was told of their own action.
    await asyncio.sleep(0.5)
    for who in (owner, alice, bob):
        items = await _inbox(client, who, bid)
        assert all(item["actorId"] != who.user_id for item in items)
        assert all(item["actorId"] in (owner.user_id, alice.user_id, bob.user_id) for item in items)
    assert _kinds(await _inbox(client, bob, bid)) == [
        "BOARD_ASSIGNED",
        "BOARD_COMMENT_ADDED",
        "BOARD_PARTICIPANT_ADDED",
        "BOARD_UPDATED",
    ]
    assert _kinds(await _inbox(client, alice, bid)) == ["BOARD_COMMENT_ADDED", "BOARD_UPDATED"]
    assert _kinds(await _inbox(client, owner, bid)) == [
        "BOARD_PARTICIPANT_ADDED",
        "BOARD_UPDATED",
        "BOARD_UPDATED",
    ]


async def test_participants_added_later_are_told(client: httpx.AsyncClient) -> None:
    crew = await team(client)
    pid = (await project(client, crew.owner, crew.workspace_id, members=(crew.alice, crew.bob)))["projectId"]
    board = await call(
        client, "POST", "/api/boards", crew.alice, status=201, json={"projectId": pid, "title": "Solo"}
    )
    bid = board["boardId"]
    await call(
        client,
        "POST",
        "/api/participants",
        crew.alice,
        status=201,
        json={"boardId": bid, "userIds": [crew.bob.user_id, crew.alice.user_id]},
    )
    (added,) = await _wait_for(client, crew.bob, bid, "BOARD_PARTICIPANT_ADDED")
    assert added["actorId"] == crew.alice.user_id
    # Reassigning on update tells the new assignee; the actor still hears nothing.
    await call(client, "PUT", f"/api/boards/{bid}", crew.alice, json={"assigneeId": crew.owner.user_id})
    (assigned,) = await _wait_for(client, crew.owner, bid, "BOARD_ASSIGNED")
    assert assigned["actorId"] == crew.alice.user_id
    await asyncio.sleep(0.5)
    assert await _inbox(client, crew.alice, bid) == []


async def test_rows_left_in_the_outbox_are_delivered_once(
    client: httpx.AsyncClient, stack: StackInfo
) -> None:
    """A row a crashed process left behind goes out with the next delivery; a repeat creates nothing."""
    crew = await team(client)
    pid = (await project(client, crew.owner, crew.workspace_id, members=(crew.alice, crew.bob)))["projectId"]
    orphan = str(uuid.uuid4())
    key = f"test:{uuid.uuid4()}"
    event = {
        "type": "BOARD_UPDATED",
        "actorId": crew.alice.user_id,
        "targetUserId": crew.bob.user_id,
        "workspaceId": crew.workspace_id,
        "resourceType": "board",
        "resourceId": orphan,
        "resourceName": "Left behind",
        "metadata": {"projectId": pid, "projectName": "Apollo", "changes": []},
    }
    url = make_url(stack.database_url).set(drivername="postgresql", database="wealist_board")

    async def leave_row() -> None:
        # As the servicers write it, but with no poke: as if the process died right after the commit.
        async with await psycopg.AsyncConnection.connect(url.render_as_string(hide_password=False)) as db:
            await db.execute(
                "INSERT INTO outbox (id, key, kind, payload, attempts, created_at) "
                "VALUES (%s, %s, %s, %s::jsonb, 0, now())",
                (uuid.uuid4(), key, "noti.notifications", json.dumps({"events": [event]})),
            )

    await leave_row()
    # Any later change pokes the notifier, which takes every row there is.
    await call(
        client, "POST", "/api/boards", crew.alice, status=201, json={"projectId": pid, "title": "Poke"}
    )
    (delivered,) = await _wait_for(client, crew.bob, orphan, "BOARD_UPDATED")
    assert delivered["resourceName"] == "Left behind"
    # Delivered again (the delete after a delivery was lost, say): noti keeps the first one only.
    await leave_row()
    await call(
        client, "POST", "/api/boards", crew.alice, status=201, json={"projectId": pid, "title": "Poke 2"}
    )
    async with asyncio.timeout(10):
        while True:
            async with await psycopg.AsyncConnection.connect(url.render_as_string(hide_password=False)) as db:
                cursor = await db.execute("SELECT count(*) FROM outbox WHERE key = %s", (key,))
                (left,) = await cursor.fetchone() or (0,)
            if left == 0:
                break
            await asyncio.sleep(0.1)
    assert len(await _inbox(client, crew.bob, orphan)) == 1
