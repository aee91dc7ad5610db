"""Attachments through the real gateway and the stack's S3 server.

Presigned upload → PUT to S3 → register → confirm by a project, board or comment → list → download; the
allow-list and size limit; who may see, download and delete; the S3 object going with the row; the
bucket's CORS for the web client's origin; and the clean-up of expired uploads by a real board process.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import httpx
import pytest
from minio.error import S3Error
from sqlmodel import col, select
from wealist.board.v1 import attachment_pb2, attachment_pb2_grpc

from devstack import StackInfo
from mesh import Database, load_tls, open_channel
from services.board.models import Attachment
from services.board.settings import BoardSettings
from tests.support import BOARD, Person, Team, bearer, call, extra_service, project, team

PDF = b"%PDF-1.4\n" + b"plan " * 200
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
WEB_ORIGIN = "http://localhost:5173"


def _ticket_body(workspace_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workspaceId": workspace_id,
        "fileName": "plan.pdf",
        "fileSize": len(PDF),
        "contentType": "application/pdf",
        "entityType": "PROJECT",
    }
    body.update(overrides)
    return body


async def _ticket(client: httpx.AsyncClient, who: Person, workspace_id: str, **overrides: Any) -> Any:
    """A presigned upload (the CreatePresignedUpload response)."""
    return await call(
        client, "POST", "/api/attachments/presigned-url", who, json=_ticket_body(workspace_id, **overrides)
    )


async def _put(url: str, content: bytes, content_type: str) -> None:
    # The browser's PUT: straight to S3, the same Content-Type, no Authorization header.
    async with httpx.AsyncClient(timeout=15, trust_env=False) as s3:
        reply = await s3.put(url, content=content, headers={"Content-Type": content_type})
    assert reply.status_code == 200, reply.text


async def _fetch(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=15, trust_env=False) as s3:
        return await s3.get(url)


async def _upload(
    client: httpx.AsyncClient,
    who: Person,
    workspace_id: str,
    *,
    entity: str = "PROJECT",
    name: str = "plan.pdf",
    content: bytes = PDF,
    content_type: str = "application/pdf",
) -> Any:
    """Presign and PUT a file; the ticket."""
    ticket = await _ticket(
        client,
        who,
        workspace_id,
        entityType=entity,
        fileName=name,
        fileSize=len(content),
        contentType=content_type,
    )
    await _put(ticket["uploadUrl"], content, content_type)
    return ticket


async def _error(
    client: httpx.AsyncClient, verb: str, path: str, who: Person, status: int, **kwargs: Any
) -> dict[str, Any]:
    """The ``error`` object of a failed board call."""
    body = await call(client, verb, path, who, status=status, **kwargs)
    error: dict[str, Any] = body["error"]
    return error


async def _object_exists(stack: StackInfo, key: str) -> bool:
    def stat() -> str | None:
        try:
            stack.s3.client().stat_object(stack.s3.bucket, key)
        except S3Error as error:
            return error.code
        return None

    missing = await asyncio.to_thread(stat)
    # Anything but "not there" (a server error, say) must not pass for a deleted object.
    assert missing in {None, "NoSuchKey", "ResourceNotFound"}, missing
    return missing is None


async def _fresh_download(stack: StackInfo, key: str) -> httpx.Response:
    """GET on a newly presigned URL for ``key`` (independent of the service's own URLs)."""
    url = await asyncio.to_thread(stack.s3.client().presigned_get_object, stack.s3.bucket, key)
    return await _fetch(url)


async def _board(client: httpx.AsyncClient, who: Person, project_id: str, *attachment_ids: str) -> Any:
    return await call(
        client,
        "POST",
        "/api/boards",
        who,
        status=201,
        json={
            "projectId": project_id,
            "title": "Card with files",
            "customFields": {"stage": "pending", "importance": "normal", "role": "developer"},
            "attachmentIds": list(attachment_ids),
        },
    )


@pytest.fixture
async def crew(client: httpx.AsyncClient) -> Team:
    """A workspace with an owner, alice and bob, and an outsider of another workspace."""
    return await team(client)


async def test_upload_register_confirm_list_and_download(
    client: httpx.AsyncClient, crew: Team, stack: StackInfo
) -> None:
    alice = crew.alice
    ticket = await _ticket(client, alice, crew.workspace_id, entityType="project")
    attachment_id = ticket["attachmentId"]
    assert ticket["expiresIn"] == 300
    key = ticket["fileKey"]
    assert re.fullmatch(
        rf"board/projects/{crew.workspace_id}/\d{{4}}/\d{{2}}/{attachment_id}_\d+\.pdf", key
    ), key
    await _put(ticket["uploadUrl"], PDF, "application/pdf")
    assert await _object_exists(stack, key)

    # The web client's second step returns the same TEMP row, however often it is called.
    register = {
        "entityType": "PROJECT",
        "fileKey": key,
        "fileName": "plan.pdf",
        "fileSize": len(PDF),
        "contentType": "application/pdf",
    }
    for _ in range(2):
        registered = await call(client, "POST", "/api/attachments", alice, status=201, json=register)
        assert registered["id"] == attachment_id
        assert registered["status"] == "TEMP"
        assert "entityId" not in registered
        assert registered["expiresAt"]
        assert registered["uploadedBy"] == alice.user_id

    created = await call(
        client,
        "POST",
        "/api/projects",
        alice,
        status=201,
        json={"workspaceId": crew.workspace_id, "name": "With files", "attachmentIds": [attachment_id]},
    )
    project_id = created["projectId"]
    assert [a["id"] for a in created["attachments"]] == [attachment_id]

    # Another member of the workspace sees the confirmed file, with a working URL.
    (listed,) = await call(client, "GET", f"/api/projects/{project_id}/attachments", crew.bob)
    assert listed["id"] == attachment_id
    assert listed["status"] == "CONFIRMED"
    assert listed["entityType"] == "PROJECT"
    assert listed["entityId"] == project_id
    assert listed["fileName"] == "plan.pdf"
    assert listed["fileSize"] == len(PDF)
    assert listed["contentType"] == "application/pdf"
    assert "expiresAt" not in listed
    assert (await _fetch(listed["fileUrl"])).content == PDF

    download = await call(client, "GET", f"/api/attachments/{attachment_id}/download", crew.bob)
    assert download["fileName"] == "plan.pdf"
    assert download["contentType"] == "application/pdf"
    assert download["expiresIn"] == 3600
    fetched = await _fetch(download["downloadUrl"])
    assert fetched.status_code == 200
    assert fetched.content == PDF

    # Confirmed once, never again: neither registered nor confirmed by another project.
    await _error(client, "POST", "/api/attachments", alice, 404, json=register)
    error = await _error(
        client,
        "POST",
        "/api/projects",
        alice,
        400,
        json={"workspaceId": crew.workspace_id, "name": "Reuse", "attachmentIds": [attachment_id]},
    )
    assert error["field"] == "attachmentIds"
    assert "not in temporary status" in error["message"]


async def test_the_bucket_answers_the_web_clients_preflight(client: httpx.AsyncClient, crew: Team) -> None:
    ticket = await _ticket(client, crew.alice, crew.workspace_id)
    async with httpx.AsyncClient(timeout=15, trust_env=False) as s3:
        preflight = await s3.options(
            ticket["uploadUrl"],
            headers={
                "Origin": WEB_ORIGIN,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code in (200, 204), preflight.text
        assert preflight.headers.get("access-control-allow-origin") in (WEB_ORIGIN, "*")
        assert "PUT" in preflight.headers.get("access-control-allow-methods", "")
        allowed_headers = preflight.headers.get("access-control-allow-headers", "").lower()
        assert "content-type" in allowed_headers or "*" in allowed_headers
        put = await s3.put(
            ticket["uploadUrl"],
            content=PDF,
            headers={"Content-Type": "application/pdf", "Origin": WEB_ORIGIN},
        )
        assert put.status_code == 200, put.text
        assert put.headers.get("access-control-allow-origin") in (WEB_ORIGIN, "*")
        # An origin the bucket does not list gets no CORS grant.
        stranger = await s3.options(
            ticket["uploadUrl"],
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"},
        )
        assert stranger.headers.get("access-control-allow-origin") not in ("https://evil.example", "*")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"fileSize": 52_428_801}, ("FILE_TOO_LARGE", "fileSize", "File size exceeds 50MB limit")),
        ({"fileSize": 0}, ("VALIDATION_ERROR", "fileSize", "File size must be greater than 0")),
        ({"fileSize": -5}, ("VALIDATION_ERROR", "fileSize", "File size must be greater than 0")),
        (
            {"fileName": "setup.exe", "contentType": "application/x-msdownload"},
            ("INVALID_FILE_TYPE", "contentType", "Unsupported file type"),
        ),
        (
            {"fileName": "setup.exe", "contentType": "application/pdf"},
            ("INVALID_FILE_TYPE", "contentType", ""),
        ),
        ({"fileName": "plan.pdf", "contentType": "image/png"}, ("INVALID_FILE_TYPE", "contentType", "")),
        (
            {"fileName": "photo.png", "contentType": "application/pdf"},
            ("INVALID_FILE_TYPE", "contentType", ""),
        ),
        ({"fileName": "README", "contentType": "text/plain"}, ("INVALID_FILE_TYPE", "fileName", "extension")),
        ({"entityType": "TASK"}, ("VALIDATION_ERROR", "entityType", "Invalid entity type")),
        ({"entityType": ""}, ("VALIDATION_ERROR", "entityType", "Invalid entity type")),
        ({"workspaceId": "not-a-uuid"}, ("VALIDATION_ERROR", "workspaceId", "Invalid workspace ID")),
        ({"fileName": "   "}, ("VALIDATION_ERROR", "fileName", "")),
    ],
)
async def test_presigned_upload_refuses_bad_files(
    client: httpx.AsyncClient,
    crew: Team,
    overrides: dict[str, Any],
    expected: tuple[str, str, str],
) -> None:
    code, field, message = expected
    error = await _error(
        client,
        "POST",
        "/api/attachments/presigned-url",
        crew.alice,
        400,
        json=_ticket_body(crew.workspace_id, **overrides),
    )
    assert (error["code"], error["field"]) == (code, field), error
    assert message in error["message"]


async def test_presigned_upload_accepts_the_limit_any_case_and_the_same_family(
    client: httpx.AsyncClient, crew: Team
) -> None:
    exact = await _ticket(client, crew.alice, crew.workspace_id, fileSize=52_428_800)
    assert exact["attachmentId"]
    # Another type of the same family, an upper-case extension (kept in the key), a lower-case entity type.
    photo = await _ticket(
        client,
        crew.alice,
        crew.workspace_id,
        fileName="Photo.JPG",
        contentType="image/png",
        entityType="comment",
    )
    assert photo["fileKey"].startswith(f"board/comments/{crew.workspace_id}/")
    assert photo["fileKey"].endswith(".JPG")
    notes = await _ticket(
        client, crew.alice, crew.workspace_id, fileName="notes.md", contentType="text/markdown; charset=utf-8"
    )
    assert notes["fileKey"].endswith(".md")


async def test_only_workspace_members_may_upload(client: httpx.AsyncClient, crew: Team) -> None:
    error = await _error(
        client,
        "POST",
        "/api/attachments/presigned-url",
        crew.outsider,
        403,
        json=_ticket_body(crew.workspace_id),
    )
    assert error["code"] == "FORBIDDEN"
    await _error(
        client,
        "POST",
        "/api/attachments/presigned-url",
        crew.alice,
        403,
        json=_ticket_body(str(uuid.uuid4())),
    )
    # Without a token nothing is issued at all.
    reply = await client.post(f"{BOARD}/api/attachments/presigned-url", json=_ticket_body(crew.workspace_id))
    assert reply.status_code == 401


async def test_register_checks_the_key(client: httpx.AsyncClient, crew: Team) -> None:
    ticket = await _ticket(client, crew.alice, crew.workspace_id, entityType="BOARD")
    register = {
        "entityType": "BOARD",
        "fileKey": ticket["fileKey"],
        "fileName": "plan.pdf",
        "fileSize": len(PDF),
        "contentType": "application/pdf",
    }
    # Nothing was PUT yet.
    error = await _error(client, "POST", "/api/attachments", crew.alice, 400, json=register)
    assert error["field"] == "fileKey"
    await _put(ticket["uploadUrl"], PDF, "application/pdf")
    error = await _error(
        client,
        "POST",
        "/api/attachments",
        crew.alice,
        400,
        json={**register, "fileKey": "profiles/x/plan.pdf"},
    )
    assert (error["field"], error["message"]) == ("fileKey", "fileKey: Invalid file key format")
    # Someone else's upload, an unknown key, another entity type.
    await _error(client, "POST", "/api/attachments", crew.bob, 404, json=register)
    await _error(
        client,
        "POST",
        "/api/attachments",
        crew.alice,
        404,
        json={**register, "fileKey": "board/boards/nope.pdf"},
    )
    error = await _error(
        client, "POST", "/api/attachments", crew.alice, 400, json={**register, "entityType": "COMMENT"}
    )
    assert error["field"] == "entityType"
    error = await _error(
        client, "POST", "/api/attachments", crew.alice, 400, json={**register, "fileSize": 0}
    )
    assert error["field"] == "fileSize"
    registered = await call(client, "POST", "/api/attachments", crew.alice, status=201, json=register)
    assert registered["id"] == ticket["attachmentId"]


async def test_confirming_needs_the_callers_own_upload_of_the_right_type(
    client: httpx.AsyncClient, crew: Team
) -> None:
    bobs = await _upload(client, crew.bob, crew.workspace_id)
    for_a_board = await _upload(client, crew.alice, crew.workspace_id, entity="BOARD")
    outsiders = await _upload(client, crew.outsider, crew.other_workspace_id)
    cases = [
        ([bobs["attachmentId"]], "One or more attachments not found"),
        ([str(uuid.uuid4())], "One or more attachments not found"),
        ([outsiders["attachmentId"]], "One or more attachments not found"),
        ([for_a_board["attachmentId"]], "Attachment entity type does not match"),
    ]
    for ids, message in cases:
        error = await _error(
            client,
            "POST",
            "/api/projects",
            crew.alice,
            400,
            json={"workspaceId": crew.workspace_id, "name": "Borrowed files", "attachmentIds": ids},
        )
        assert error["field"] == "attachmentIds"
        assert message in error["message"]
    # The refused uploads are untouched: their owners still confirm them.
    created = await call(
        client,
        "POST",
        "/api/projects",
        crew.bob,
        status=201,
        json={"workspaceId": crew.workspace_id, "name": "Bob's", "attachmentIds": [bobs["attachmentId"]]},
    )
    assert [a["id"] for a in created["attachments"]] == [bobs["attachmentId"]]


async def test_outsiders_see_nothing(client: httpx.AsyncClient, crew: Team) -> None:
    ticket = await _upload(client, crew.alice, crew.workspace_id)
    temp_id = ticket["attachmentId"]
    # A TEMP upload is its uploader's alone.
    await call(client, "GET", f"/api/attachments/{temp_id}/download", crew.alice)
    await _error(client, "GET", f"/api/attachments/{temp_id}/download", crew.bob, 404)

    created = await call(
        client,
        "POST",
        "/api/projects",
        crew.alice,
        status=201,
        json={"workspaceId": crew.workspace_id, "name": "Private files", "attachmentIds": [temp_id]},
    )
    project_id = created["projectId"]
    outsider = crew.outsider
    await _error(client, "GET", f"/api/attachments/{temp_id}/download", outsider, 404)
    await _error(client, "GET", f"/api/projects/{project_id}/attachments", outsider, 404)
    await _error(client, "DELETE", f"/api/attachments/{temp_id}", outsider, 404)
    await _error(client, "GET", f"/api/attachments/{uuid.uuid4()}/download", crew.alice, 404)
    await _error(client, "GET", f"/api/boards/{uuid.uuid4()}/attachments", crew.alice, 404)
    await _error(client, "GET", f"/api/comments/{uuid.uuid4()}/attachments", crew.alice, 404)
    error = await _error(client, "GET", "/api/attachments/not-an-id/download", crew.alice, 400)
    assert error["field"] == "attachmentId"
    # Still there for the members.
    assert [
        a["id"] for a in await call(client, "GET", f"/api/projects/{project_id}/attachments", crew.bob)
    ] == [temp_id]


async def test_delete_permissions_and_the_object_goes_too(
    client: httpx.AsyncClient, crew: Team, stack: StackInfo
) -> None:
    alice, bob = crew.alice, crew.bob
    # Alice owns the project; bob puts a card with his file in it, and comments with another file.
    project_id = (await project(client, alice, crew.workspace_id, "Shared", members=(bob,)))["projectId"]
    bobs_card_file = await _upload(
        client, bob, crew.workspace_id, entity="BOARD", name="a.png", content=PNG, content_type="image/png"
    )
    card = await _board(client, bob, project_id, bobs_card_file["attachmentId"])
    board_id = card["boardId"]
    older = await _upload(
        client,
        bob,
        crew.workspace_id,
        entity="COMMENT",
        name="one.txt",
        content=b"1",
        content_type="text/plain",
    )
    newer = await _upload(
        client,
        bob,
        crew.workspace_id,
        entity="COMMENT",
        name="two.txt",
        content=b"2",
        content_type="text/plain",
    )
    comment = await call(
        client,
        "POST",
        "/api/comments",
        bob,
        status=201,
        json={
            "boardId": board_id,
            "content": "files",
            "attachmentIds": [older["attachmentId"], newer["attachmentId"]],
        },
    )
    comment_files = await call(client, "GET", f"/api/comments/{comment['commentId']}/attachments", alice)
    assert [a["fileName"] for a in comment_files] == ["two.txt", "one.txt"]
    (card_file,) = await call(client, "GET", f"/api/boards/{board_id}/attachments", alice)
    assert card_file["id"] == bobs_card_file["attachmentId"]
    assert card_file["entityType"] == "BOARD"

    # The workspace's owner is no manager of alice's project and did not upload bob's file.
    error = await _error(client, "DELETE", f"/api/attachments/{older['attachmentId']}", crew.owner, 403)
    assert error["message"] == "You do not have permission to delete this attachment"
    # Alice's own file cannot be deleted by bob, a member but not a manager of the project.
    alices = await _upload(client, alice, crew.workspace_id, entity="BOARD")
    await call(
        client, "PUT", f"/api/boards/{board_id}", alice, json={"attachmentIds": [alices["attachmentId"]]}
    )
    await _error(client, "DELETE", f"/api/attachments/{alices['attachmentId']}", bob, 403)
    assert await _object_exists(stack, alices["fileKey"])

    # The uploader deletes; the project's OWNER deletes someone else's file.
    deleted = await call(client, "DELETE", f"/api/attachments/{older['attachmentId']}", bob)
    assert deleted == {"message": "Attachment deleted successfully"}
    await call(client, "DELETE", f"/api/attachments/{bobs_card_file['attachmentId']}", alice)
    for ticket in (older, bobs_card_file):
        assert not await _object_exists(stack, ticket["fileKey"])
        assert (await _fresh_download(stack, ticket["fileKey"])).status_code == 404
        await _error(client, "DELETE", f"/api/attachments/{ticket['attachmentId']}", bob, 404)
        await _error(client, "GET", f"/api/attachments/{ticket['attachmentId']}/download", bob, 404)
    assert [
        a["id"] for a in await call(client, "GET", f"/api/comments/{comment['commentId']}/attachments", bob)
    ] == [newer["attachmentId"]]
    assert [a["id"] for a in await call(client, "GET", f"/api/boards/{board_id}/attachments", bob)] == [
        alices["attachmentId"]
    ]
    assert await _object_exists(stack, newer["fileKey"])

    # Deleting the card takes its files and its comments' files with it, from S3 as well.
    await call(client, "DELETE", f"/api/boards/{board_id}", alice)
    for ticket in (newer, alices):
        assert not await _object_exists(stack, ticket["fileKey"])


async def _count_rows(database: Database, ids: list[uuid.UUID]) -> int:
    async with database.unit_of_work() as session:
        rows = (await session.exec(select(Attachment).where(col(Attachment.id).in_(ids)))).all()
        return len(rows)


async def test_the_clean_up_removes_expired_uploads(
    client: httpx.AsyncClient, crew: Team, stack: StackInfo
) -> None:
    alice = crew.alice
    # A control upload through the stack's own board service: an hour to live, so it must stay.
    kept = await _upload(client, alice, crew.workspace_id)
    database = Database(BoardSettings(database_url=stack.database_url).service_database_url())
    env = {"WEALIST_TEMP_UPLOAD_SECONDS": "3", "WEALIST_CLEANUP_INTERVAL_SECONDS": "1"}
    try:
        with extra_service(stack, "board", env) as board:
            channel = open_channel(board.addr, workload="board", tls=load_tls(stack.state_dir, "gateway"))
            try:
                stub = attachment_pb2_grpc.AttachmentServiceStub(channel)
                ticket = await stub.CreatePresignedUpload(
                    attachment_pb2.CreatePresignedUploadRequest(
                        entity_type="BOARD",
                        workspace_id=crew.workspace_id,
                        file_name="draft.png",
                        file_size=len(PNG),
                        content_type="image/png",
                    ),
                    metadata=bearer(alice.token),
                )
            finally:
                await channel.close()
            expired_id = uuid.UUID(ticket.attachment_id)
            assert await _count_rows(database, [expired_id]) == 1
            await _put(ticket.upload_url, PNG, "image/png")
            # Three seconds to live, then a clean-up round every second.
            for _ in range(100):
                if not await _count_rows(database, [expired_id]):
                    break
                await asyncio.sleep(0.2)
            assert await _count_rows(database, [expired_id]) == 0, board.output()
            assert not await _object_exists(stack, ticket.file_key)
        assert await _count_rows(database, [uuid.UUID(kept["attachmentId"])]) == 1
        assert await _object_exists(stack, kept["fileKey"])
    finally:
        await database.close()
