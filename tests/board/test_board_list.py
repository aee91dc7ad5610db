"""The kanban listing, field by field: the whole JSON through the gateway and the whole message over gRPC.

``ListBoards`` reads its rows with its own queries (not the ORM objects the other board methods use), so
this pins every field it prints against values read back from the database: ids, the assignee (set and
unset), option values ("" for an option id the project no longer has, or a JSON null), dates with and
without fractions, participants in the order they were added, attachments newest first, and the filter.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
from google.protobuf import json_format
from sqlalchemy.engine import make_url
from wealist.board.v1 import board_pb2, board_pb2_grpc

from devstack import StackInfo
from tests.support import Mesh, Person, bearer, call, project, team

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 48
NIL = "00000000-0000-0000-0000-000000000000"


def rfc3339(value: datetime) -> str:
    """A timestamp as proto3 JSON prints it: UTC, 0, 3, 6 or 9 fraction digits, ``Z``."""
    moment = value.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        nanos = moment.microsecond * 1000
        digits = f"{nanos:09d}"
        text += "." + (digits[:3] if nanos % 1_000_000 == 0 else digits[:6])
    return text + "Z"


def _dsn(stack: StackInfo) -> str:
    url = make_url(stack.database_url).set(drivername="postgresql", database="wealist_board")
    return url.render_as_string(hide_password=False)


async def _upload(client: httpx.AsyncClient, who: Person, workspace_id: str, name: str) -> dict[str, Any]:
    """A TEMP board attachment of ``who``: the presigned-URL ticket, after the PUT to S3."""
    ticket: dict[str, Any] = await call(
        client,
        "POST",
        "/api/attachments/presigned-url",
        who,
        json={
            "workspaceId": workspace_id,
            "fileName": name,
            "fileSize": len(PNG),
            "contentType": "image/png",
            "entityType": "BOARD",
        },
    )
    async with httpx.AsyncClient(timeout=15) as s3:
        put = await s3.put(ticket["uploadUrl"], content=PNG, headers={"Content-Type": "image/png"})
    assert put.status_code == 200, put.text
    return ticket


def _check_url(url: str, key: str) -> None:
    """A presigned GET URL of the object ``key`` (its signature changes with the clock)."""
    parts = urlsplit(url)
    assert parts.path.endswith("/" + key), url
    assert "X-Amz-Signature" in parse_qs(parts.query), url


async def test_list_prints_every_field(client: httpx.AsyncClient, stack: StackInfo, mesh: Mesh) -> None:
    crew = await team(client)
    owner, alice, bob = crew.owner, crew.alice, crew.bob
    pid = (await project(client, owner, crew.workspace_id, members=(crew.alice, crew.bob)))["projectId"]
    assert await call(client, "GET", f"/api/boards/project/{pid}", owner) == []

    older = await _upload(client, alice, crew.workspace_id, "older.png")
    newer = await _upload(client, alice, crew.workspace_id, "newer.png")
    alpha = await call(
        client,
        "POST",
        "/api/boards",
        alice,
        status=201,
        json={
            "projectId": pid,
            "title": "Alpha",
            "content": 'Line one\nLine two — ünïcode "quoted"',
            "customFields": {"role": "developer", "stage": "in_progress", "importance": "high"},
            "participants": [bob.user_id, owner.user_id],
            "startDate": "2026-01-01T09:30:15.123456Z",
            "dueDate": "2026-02-01T00:00:00Z",
            "attachmentIds": [older["attachmentId"], newer["attachmentId"]],
        },
    )
    beta = await call(
        client,
        "POST",
        "/api/boards",
        bob,
        status=201,
        json={"projectId": pid, "title": "Beta", "assigneeId": NIL},
    )
    gamma = await call(
        client,
        "POST",
        "/api/boards",
        owner,
        status=201,
        json={
            "projectId": pid,
            "title": "Gamma",
            "content": "c",
            "assigneeId": bob.user_id,
            "customFields": {"role": "qa", "stage": "review"},
            "participants": [alice.user_id],
            "startDate": "2026-03-03T03:03:03.120Z",
        },
    )
    # A participant added later comes last; an edit moves updatedAt.
    await call(
        client,
        "PUT",
        f"/api/boards/{alpha['boardId']}",
        alice,
        json={"participants": [bob.user_id, owner.user_id, alice.user_id]},
    )
    ids = [alpha["boardId"], beta["boardId"], gamma["boardId"]]
    stale = str(uuid.uuid4())
    async with await psycopg.AsyncConnection.connect(_dsn(stack), autocommit=True) as db:
        # An option id the project does not have (written by hand): its value prints as "".
        await db.execute(
            "UPDATE boards SET custom_fields = custom_fields || jsonb_build_object('importance', %s::text)"
            " WHERE id = %s",
            (stale, gamma["boardId"]),
        )
        # A JSON null (nothing the API writes) reads as an option that is gone: "".
        await db.execute(
            "UPDATE boards SET custom_fields = '{\"role\": null}'::jsonb WHERE id = %s", (beta["boardId"],)
        )
        cursor = await db.execute(
            "SELECT id, created_at, updated_at FROM boards WHERE id = ANY(%s)", ([uuid.UUID(i) for i in ids],)
        )
        stamps = {str(row[0]): (rfc3339(row[1]), rfc3339(row[2])) for row in await cursor.fetchall()}
        cursor = await db.execute(
            "SELECT id, created_at FROM attachments WHERE id = ANY(%s)",
            ([uuid.UUID(older["attachmentId"]), uuid.UUID(newer["attachmentId"])],),
        )
        uploaded = {str(row[0]): rfc3339(row[1]) for row in await cursor.fetchall()}

    def file(ticket: dict[str, Any], name: str) -> dict[str, Any]:
        return {
            "id": ticket["attachmentId"],
            "attachmentId": ticket["attachmentId"],
            "fileName": name,
            "fileUrl": ticket["fileKey"],
            "fileSize": len(PNG),
            "contentType": "image/png",
            "uploadedBy": alice.user_id,
            "uploadedAt": uploaded[ticket["attachmentId"]],
        }

    common = {"projectId": pid, "workspaceId": crew.workspace_id}
    expected: list[dict[str, Any]] = [
        {
            "boardId": alpha["boardId"],
            **common,
            "authorId": alice.user_id,
            "assigneeId": alice.user_id,
            "title": "Alpha",
            "content": 'Line one\nLine two — ünïcode "quoted"',
            "customFields": {"stage": "in_progress", "importance": "high", "role": "developer"},
            "startDate": "2026-01-01T09:30:15.123456Z",
            "dueDate": "2026-02-01T00:00:00Z",
            "participantIds": [bob.user_id, owner.user_id, alice.user_id],
            "attachments": [file(newer, "newer.png"), file(older, "older.png")],
            "createdAt": stamps[alpha["boardId"]][0],
            "updatedAt": stamps[alpha["boardId"]][1],
        },
        {
            "boardId": beta["boardId"],
            **common,
            "authorId": bob.user_id,
            "title": "Beta",
            "content": "",
            "customFields": {"role": ""},
            "participantIds": [],
            "attachments": [],
            "createdAt": stamps[beta["boardId"]][0],
            "updatedAt": stamps[beta["boardId"]][1],
        },
        {
            "boardId": gamma["boardId"],
            **common,
            "authorId": owner.user_id,
            "assigneeId": bob.user_id,
            "title": "Gamma",
            "content": "c",
            "customFields": {"stage": "review", "importance": "", "role": "qa"},
            "startDate": "2026-03-03T03:03:03.120Z",
            "participantIds": [alice.user_id],
            "attachments": [],
            "createdAt": stamps[gamma["boardId"]][0],
            "updatedAt": stamps[gamma["boardId"]][1],
        },
    ]
    assert stamps[alpha["boardId"]][0] != stamps[alpha["boardId"]][1]

    keys = {older["attachmentId"]: older["fileKey"], newer["attachmentId"]: newer["fileKey"]}

    def without_urls(boards: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The boards with each presigned URL checked and replaced by its object key."""
        for board in boards:
            for item in board["attachments"]:
                _check_url(item["fileUrl"], keys[item["id"]])
                item["fileUrl"] = keys[item["id"]]
        return boards

    for path in (f"/api/boards/project/{pid}", f"/api/boards?projectId={pid}"):
        listed = await call(client, "GET", path, bob)
        assert without_urls(listed) == expected
    filtered = await call(
        client, "GET", f"/api/boards/project/{pid}", bob, params={"customFields": '{"role": "qa"}'}
    )
    assert without_urls(filtered) == [expected[2]]

    # The message itself: presence (no assignee, no dates), map entries and field values exactly.
    stub = board_pb2_grpc.BoardServiceStub(mesh.channel("board"))
    reply = await stub.ListBoards(board_pb2.ListBoardsRequest(project_id=pid), metadata=bearer(bob.token))
    for board in reply.boards:
        for item in board.attachments:
            _check_url(item.file_url, keys[item.id])
            item.file_url = keys[item.id]
    wanted = json_format.ParseDict({"boards": expected}, board_pb2.ListBoardsResponse())
    assert reply == wanted
    assert not reply.boards[1].HasField("assignee_id")
    assert not reply.boards[1].HasField("start_date")
    assert not reply.boards[2].HasField("due_date")
    # Deterministic: upb orders a map's entries by a per-process hash seed, on the wire and when printed.
    assert reply.SerializeToString(deterministic=True) == wanted.SerializeToString(deterministic=True)
