"""Boards through the real gateway: CRUD, move, the customFields filter, validation, events, tenancy."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
import redis.asyncio as aioredis

from devstack import StackInfo
from tests.support import BOARD, Person, Team, call, project, team, upload

NIL = "00000000-0000-0000-0000-000000000000"


@pytest_asyncio.fixture
async def stack_redis(stack: StackInfo) -> AsyncIterator[aioredis.Redis]:
    """A client of the stack's own Redis (where board events are published)."""
    client = aioredis.Redis.from_url(stack.redis_url)
    yield client
    await client.aclose()


async def _error(
    client: httpx.AsyncClient, verb: str, path: str, who: Person, status: int, **kwargs: Any
) -> dict[str, Any]:
    reply = await client.request(verb, BOARD + path, headers=who.headers, **kwargs)
    assert reply.status_code == status, f"{verb} {path}: {reply.status_code} {reply.text}"
    error: dict[str, Any] = reply.json()["error"]
    return error


async def _board(client: httpx.AsyncClient, who: Person, project_id: str, **body: Any) -> Any:
    return await call(
        client,
        "POST",
        "/api/boards",
        who,
        status=201,
        json={"projectId": project_id, "title": "Card", **body},
    )


async def _setup(client: httpx.AsyncClient) -> tuple[Team, str]:
    crew = await team(client)
    created = await project(client, crew.owner, crew.workspace_id, members=(crew.alice, crew.bob))
    return crew, created["projectId"]


async def test_board_crud_speaks_option_values(client: httpx.AsyncClient) -> None:
    crew, pid = await _setup(client)
    alice, bob = crew.alice, crew.bob
    created = await _board(
        client,
        alice,
        pid,
        title="  Write the post  ",
        content="Draft",
        customFields={"stage": "pending", "importance": "high"},
        participants=[bob.user_id, bob.user_id],
        startDate="2026-01-01T00:00:00Z",
        dueDate="2026-01-05T00:00:00Z",
    )
    bid = created["boardId"]
    assert created["title"] == "Write the post"
    assert created["customFields"] == {"stage": "pending", "importance": "high"}
    assert created["assigneeId"] == alice.user_id
    assert created["authorId"] == alice.user_id
    assert created["workspaceId"] == crew.workspace_id
    assert created["participantIds"] == [bob.user_id]
    assert created["attachments"] == []

    detail = await call(client, "GET", f"/api/boards/{bid}", bob)
    assert detail["customFields"] == {"stage": "pending", "importance": "high"}
    assert [p["userId"] for p in detail["participants"]] == [bob.user_id]
    assert detail["comments"] == []
    assert detail["startDate"] == "2026-01-01T00:00:00Z"

    updated = await call(
        client,
        "PUT",
        f"/api/boards/{bid}",
        bob,
        json={
            "projectId": pid,
            "title": "Publish the post",
            "customFields": {"stage": "review", "role": "designer"},
            "assigneeId": NIL,
            "participants": [alice.user_id, crew.owner.user_id],
        },
    )
    assert updated["title"] == "Publish the post"
    assert updated["content"] == "Draft"
    # customFields replaces the whole map.
    assert updated["customFields"] == {"stage": "review", "role": "designer"}
    assert "assigneeId" not in updated or updated["assigneeId"] in (None, "")
    assert updated["participantIds"] == [alice.user_id, crew.owner.user_id]
    assert updated["dueDate"] == "2026-01-05T00:00:00Z"

    for path in (f"/api/boards/project/{pid}", f"/api/boards?projectId={pid}"):
        listed = await call(client, "GET", path, crew.owner)
        assert [b["boardId"] for b in listed] == [bid]
        assert listed[0]["customFields"] == {"stage": "review", "role": "designer"}
        assert listed[0] == updated

    assert await call(client, "DELETE", f"/api/boards/{bid}", alice) is None
    await _error(client, "GET", f"/api/boards/{bid}", alice, 404)
    assert await call(client, "GET", f"/api/boards/project/{pid}", alice) == []


async def test_list_is_oldest_first_and_filters_by_values(client: httpx.AsyncClient) -> None:
    crew, pid = await _setup(client)
    first = await _board(
        client, crew.alice, pid, title="one", customFields={"stage": "pending", "role": "qa"}
    )
    second = await _board(
        client, crew.alice, pid, title="two", customFields={"stage": "review", "role": "qa"}
    )
    third = await _board(client, crew.alice, pid, title="three", customFields={"stage": "pending"})
    listed = await call(client, "GET", f"/api/boards/project/{pid}", crew.bob)
    assert [b["boardId"] for b in listed] == [first["boardId"], second["boardId"], third["boardId"]]

    def ids(boards: list[dict[str, Any]]) -> list[str]:
        return [b["boardId"] for b in boards]

    pending = await call(
        client, "GET", f"/api/boards/project/{pid}", crew.bob, params={"customFields": '{"stage":"pending"}'}
    )
    assert ids(pending) == [first["boardId"], third["boardId"]]
    both = await call(
        client,
        "GET",
        "/api/boards",
        crew.bob,
        params={"projectId": pid, "customFields": json.dumps({"stage": "pending", "role": "qa"})},
    )
    assert ids(both) == [first["boardId"]]
    none = await call(
        client, "GET", f"/api/boards/project/{pid}", crew.bob, params={"customFields": '{"stage":"nowhere"}'}
    )
    assert none == []
    error = await _error(
        client, "GET", f"/api/boards/project/{pid}", crew.bob, 400, params={"customFields": "{not json"}
    )
    assert error["code"] == "VALIDATION_ERROR"
    assert error["field"] == "customFields"
    missing = await _error(client, "GET", "/api/boards", crew.bob, 400)
    assert missing["field"] == "projectId"


async def test_move_sets_one_field_and_publishes_values(
    client: httpx.AsyncClient, stack_redis: aioredis.Redis
) -> None:
    crew, pid = await _setup(client)
    board = await _board(client, crew.alice, pid, customFields={"stage": "pending", "importance": "low"})
    bid = board["boardId"]
    async with stack_redis.pubsub() as pubsub:
        await pubsub.subscribe(f"kanban:project:{pid}")
        moved = await call(
            client,
            "PUT",
            f"/api/boards/{bid}/move",
            crew.bob,
            json={"projectId": pid, "groupByFieldName": "stage", "newFieldValue": "in_progress"},
        )
        assert moved == {
            "boardId": bid,
            "newFieldValue": "in_progress",
            "message": "Board moved successfully",
        }
        frame = await _next_frame(pubsub)
    assert frame == {
        "type": "BOARD_MOVED",
        "payload": {"from": "pending", "to": "in_progress", "field": "stage"},
        "boardId": bid,
    }
    detail = await call(client, "GET", f"/api/boards/{bid}", crew.bob)
    assert detail["customFields"] == {"stage": "in_progress", "importance": "low"}

    cleared = await call(
        client,
        "PUT",
        f"/api/boards/{bid}/move",
        crew.bob,
        json={"projectId": pid, "groupByFieldName": "importance", "newFieldValue": ""},
    )
    assert cleared["newFieldValue"] == ""
    detail = await call(client, "GET", f"/api/boards/{bid}", crew.bob)
    assert detail["customFields"] == {"stage": "in_progress"}

    bad_value = await _error(
        client,
        "PUT",
        f"/api/boards/{bid}/move",
        crew.bob,
        400,
        json={"projectId": pid, "groupByFieldName": "stage", "newFieldValue": "shipped"},
    )
    assert bad_value["field"] == "newFieldValue"
    bad_field = await _error(
        client,
        "PUT",
        f"/api/boards/{bid}/move",
        crew.bob,
        400,
        json={"projectId": pid, "groupByFieldName": "colour", "newFieldValue": "pending"},
    )
    assert bad_field["field"] == "groupByFieldName"
    other = await project(client, crew.owner, crew.workspace_id, "Other", members=(crew.alice, crew.bob))
    wrong_project = await _error(
        client,
        "PUT",
        f"/api/boards/{bid}/move",
        crew.bob,
        400,
        json={"projectId": other["projectId"], "groupByFieldName": "stage", "newFieldValue": "pending"},
    )
    assert wrong_project["field"] == "projectId"


async def _next_frame(pubsub: Any) -> Any:
    """The next published message on a subscribed channel, as JSON."""
    async with asyncio.timeout(10):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                return json.loads(message["data"])


async def test_event_payloads_equal_the_responses(
    client: httpx.AsyncClient, stack_redis: aioredis.Redis
) -> None:
    crew, pid = await _setup(client)
    async with stack_redis.pubsub() as pubsub:
        await pubsub.subscribe(f"kanban:project:{pid}")
        created = await _board(client, crew.alice, pid, customFields={"stage": "approved"})
        frame = await _next_frame(pubsub)
        assert frame["type"] == "BOARD_CREATED"
        assert frame["boardId"] == created["boardId"]
        assert frame["payload"] == created
        assert frame["payload"]["customFields"] == {"stage": "approved"}

        updated = await call(
            client,
            "PUT",
            f"/api/boards/{created['boardId']}",
            crew.bob,
            json={"customFields": {"role": "qa"}},
        )
        frame = await _next_frame(pubsub)
        assert frame["type"] == "BOARD_UPDATED"
        assert frame["payload"] == updated
        assert frame["payload"]["customFields"] == {"role": "qa"}

        await call(client, "DELETE", f"/api/boards/{created['boardId']}", crew.alice)
        frame = await _next_frame(pubsub)
        assert frame == {
            "type": "BOARD_DELETED",
            "payload": {"boardId": created["boardId"]},
            "boardId": created["boardId"],
        }


async def test_invalid_input_names_the_field(client: httpx.AsyncClient) -> None:
    crew, pid = await _setup(client)
    alice = crew.alice

    async def create_error(body: dict[str, Any]) -> dict[str, Any]:
        return await _error(client, "POST", "/api/boards", alice, 400, json={"projectId": pid, **body})

    assert (await create_error({"title": "x", "customFields": {"priority": "high"}}))["field"] == (
        "customFields.priority"
    )
    wrong_value = await create_error({"title": "x", "customFields": {"stage": "shipped"}})
    assert wrong_value["field"] == "customFields.stage"
    assert "Invalid custom field values" in wrong_value["message"]
    # An option value of the field exists, but for another field.
    assert (await create_error({"title": "x", "customFields": {"role": "pending"}}))[
        "field"
    ] == "customFields.role"
    assert (await create_error({"title": "   "}))["field"] == "title"
    assert (await create_error({"title": "x" * 201}))["field"] == "title"
    assert (await create_error({"title": "x", "content": "y" * 5001}))["field"] == "content"
    dates = await create_error(
        {"title": "x", "startDate": "2026-02-02T00:00:00Z", "dueDate": "2026-02-01T00:00:00Z"}
    )
    assert dates["field"] == "startDate"
    assert (await create_error({"title": "x", "assigneeId": crew.outsider.user_id}))["field"] == "assigneeId"
    assert (await create_error({"title": "x", "participants": [crew.outsider.user_id]}))[
        "field"
    ] == "participants"
    many = [str(uuid.uuid4()) for _ in range(51)]
    assert (await create_error({"title": "x", "participants": many}))["field"] == "participants"
    assert (await create_error({"title": "x", "assigneeId": "not-a-uuid"}))["field"] == "assigneeId"
    assert await call(client, "GET", f"/api/boards/project/{pid}", alice) == []

    board = await _board(client, alice, pid, startDate="2026-03-01T00:00:00Z", dueDate="2026-03-10T00:00:00Z")
    path = f"/api/boards/{board['boardId']}"
    # Checked on the effective values: only the start is sent, the stored due date is earlier.
    late = await _error(client, "PUT", path, alice, 400, json={"startDate": "2026-03-20T00:00:00Z"})
    assert late["field"] == "startDate"
    bad_field = await _error(client, "PUT", path, alice, 400, json={"customFields": {"stage": 3}})
    assert bad_field["field"] == "customFields.stage"
    other = await project(client, crew.owner, crew.workspace_id, "Elsewhere", members=(crew.alice, crew.bob))
    wrong = await _error(
        client, "PUT", path, alice, 400, json={"projectId": other["projectId"], "title": "z"}
    )
    assert wrong["field"] == "projectId"
    stranger = await _error(client, "PUT", path, alice, 400, json={"participants": [crew.outsider.user_id]})
    assert stranger["field"] == "participants"
    unchanged = await call(client, "GET", path, alice)
    assert unchanged["title"] == "Card"
    assert unchanged["startDate"] == "2026-03-01T00:00:00Z"


async def test_a_value_of_another_project_is_refused(client: httpx.AsyncClient) -> None:
    crew, pid = await _setup(client)
    other = await project(client, crew.owner, crew.workspace_id, "Second", members=(crew.alice, crew.bob))
    await call(
        client,
        "POST",
        "/api/field-options",
        crew.owner,
        status=201,
        json={
            "projectId": other["projectId"],
            "fieldType": "stage",
            "value": "blocked",
            "label": "Blocked",
            "color": "#112233",
        },
    )
    await _board(client, crew.alice, other["projectId"], customFields={"stage": "blocked"})
    refused = await _error(
        client,
        "POST",
        "/api/boards",
        crew.alice,
        400,
        json={"projectId": pid, "title": "x", "customFields": {"stage": "blocked"}},
    )
    assert refused["field"] == "customFields.stage"


async def test_failed_attachment_confirmation_leaves_no_board(client: httpx.AsyncClient) -> None:
    crew, pid = await _setup(client)
    bobs = await upload(client, crew.bob, crew.workspace_id, "BOARD")
    for ids in ([str(uuid.uuid4())], [bobs]):
        await _error(
            client,
            "POST",
            "/api/boards",
            crew.alice,
            400,
            json={
                "projectId": pid,
                "title": "With a file",
                "participants": [crew.bob.user_id],
                "attachmentIds": ids,
            },
        )
    assert await call(client, "GET", f"/api/boards/project/{pid}", crew.alice) == []

    # The owner's own upload works, and the file comes back with the board.
    own = await upload(client, crew.alice, crew.workspace_id, "BOARD")
    board = await _board(client, crew.alice, pid, attachmentIds=[own])
    assert [a["id"] for a in board["attachments"]] == [own]
    listed = await call(client, "GET", f"/api/boards/project/{pid}", crew.alice)
    assert [a["id"] for a in listed[0]["attachments"]] == [own]
    added = await upload(client, crew.alice, crew.workspace_id, "BOARD")
    updated = await call(
        client, "PUT", f"/api/boards/{board['boardId']}", crew.alice, json={"attachmentIds": [added]}
    )
    assert {a["id"] for a in updated["attachments"]} == {own, added}


async def test_outsiders_see_no_board(client: httpx.AsyncClient) -> None:
    crew, pid = await _setup(client)
    board = await _board(client, crew.alice, pid)
    bid = board["boardId"]
    comment = await call(
        client, "POST", "/api/comments", crew.alice, status=201, json={"boardId": bid, "content": "hi"}
    )
    cid = comment["commentId"]
    outsider = crew.outsider
    routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/api/boards/project/{pid}", None),
        ("GET", f"/api/boards?projectId={pid}", None),
        ("POST", "/api/boards", {"projectId": pid, "title": "x"}),
        ("GET", f"/api/boards/{bid}", None),
        ("PUT", f"/api/boards/{bid}", {"title": "mine"}),
        (
            "PUT",
            f"/api/boards/{bid}/move",
            {"projectId": pid, "groupByFieldName": "stage", "newFieldValue": "review"},
        ),
        ("DELETE", f"/api/boards/{bid}", None),
        ("GET", f"/api/comments/board/{bid}", None),
        ("GET", f"/api/comments?boardId={bid}", None),
        ("POST", "/api/comments", {"boardId": bid, "content": "hello"}),
        ("PUT", f"/api/comments/{cid}", {"content": "edited"}),
        ("DELETE", f"/api/comments/{cid}", None),
        ("POST", "/api/participants", {"boardId": bid, "userIds": [outsider.user_id]}),
        ("GET", f"/api/participants/board/{bid}", None),
        ("DELETE", f"/api/participants/board/{bid}/user/{crew.alice.user_id}", None),
    ]
    for verb, path, body in routes:
        await _error(client, verb, path, outsider, 404, json=body)
    detail = await call(client, "GET", f"/api/boards/{bid}", crew.alice)
    assert detail["title"] == "Card"
    assert [c["content"] for c in detail["comments"]] == ["hi"]
