"""Presigned uploads are bound to the declared type and size, end to end through the gateway and S3.

The attack (issue 12): a slot declared as a 10-byte image/png received 5 MB of text/html, and the file
was then served as text/html from the bucket's origin. The dev stack's S3 (moto) does not check
signatures, so these tests also prove the second line of defence: the service HEADs the object before it
accepts it, refuses any other size or type, and makes S3 serve what it accepts as a download of the
declared type.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from devstack import StackInfo
from tests.support import USER, Person, Team, call, team

PNG = b"\x89PNG\r\n\x1a\n\x00\x00"  # the 10 bytes the slot is declared for
HTML = b"<html><script>alert(document.cookie)</script></html>" + b" " * (5 * 1024 * 1024)


def _signed_headers(url: str) -> set[str]:
    return set(parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";"))


async def _put(url: str, content: bytes, content_type: str) -> None:
    # What a browser (or an attacker with the URL) sends: no Authorization, its own Content-Type.
    async with httpx.AsyncClient(timeout=30, trust_env=False) as s3:
        reply = await s3.put(url, content=content, headers={"Content-Type": content_type})
    # moto stores whatever comes; S3 itself would refuse it (403) for the signed headers.
    assert reply.status_code in (200, 403), reply.text


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30, trust_env=False) as s3:
        return await s3.get(url)


async def _board_slot(
    client: httpx.AsyncClient, who: Person, workspace_id: str, entity_type: str = "BOARD"
) -> Any:
    return await call(
        client,
        "POST",
        "/api/attachments/presigned-url",
        who,
        json={
            "workspaceId": workspace_id,
            "fileName": "shot.png",
            "fileSize": len(PNG),
            "contentType": "image/png",
            "entityType": entity_type,
        },
    )


@pytest.fixture
async def crew(client: httpx.AsyncClient) -> Team:
    return await team(client)


async def test_a_board_upload_url_signs_the_declared_type_and_size(
    client: httpx.AsyncClient, crew: Team
) -> None:
    slot = await _board_slot(client, crew.alice, crew.workspace_id)
    assert {"content-type", "content-length", "host"} <= _signed_headers(slot["uploadUrl"])


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(HTML, "text/html"), (b"<b>x</b>!!", "text/html"), (PNG * 2, "image/png")],
    ids=["other-type-and-size", "other-type", "other-size"],
)
async def test_a_board_slot_refuses_a_file_other_than_declared(
    client: httpx.AsyncClient, crew: Team, content: bytes, content_type: str
) -> None:
    alice = crew.alice
    slot = await _board_slot(client, alice, crew.workspace_id, "PROJECT")
    await _put(slot["uploadUrl"], content, content_type)
    register = {
        "entityType": "PROJECT",
        "fileKey": slot["fileKey"],
        "fileName": "shot.png",
        "fileSize": len(PNG),
        "contentType": "image/png",
    }
    refused = await call(client, "POST", "/api/attachments", alice, status=400, json=register)
    assert refused["error"]["field"] == "fileKey", refused
    # Nor can it be attached to an entity by its id (the web client's other path).
    project = await call(
        client,
        "POST",
        "/api/projects",
        alice,
        status=400,
        json={"workspaceId": crew.workspace_id, "name": "Trap", "attachmentIds": [slot["attachmentId"]]},
    )
    assert project["error"]["field"] == "attachmentIds", project


async def test_an_accepted_board_file_is_served_as_a_download_of_its_declared_type(
    client: httpx.AsyncClient, crew: Team
) -> None:
    alice = crew.alice
    slot = await _board_slot(client, alice, crew.workspace_id, "PROJECT")
    await _put(slot["uploadUrl"], PNG, "image/png")
    created = await call(
        client,
        "POST",
        "/api/projects",
        alice,
        status=201,
        json={"workspaceId": crew.workspace_id, "name": "Shots", "attachmentIds": [slot["attachmentId"]]},
    )
    (inline,) = created["attachments"]
    download = await call(client, "GET", f"/api/attachments/{slot['attachmentId']}/download", crew.bob)
    for url in (inline["fileUrl"], download["downloadUrl"]):
        fetched = await _get(url)
        assert fetched.status_code == 200, fetched.text
        assert fetched.content == PNG
        assert fetched.headers["content-type"] == "image/png"
        assert fetched.headers["content-disposition"].startswith("attachment;"), fetched.headers


async def _profile_slot(client: httpx.AsyncClient, who: Person) -> dict[str, Any]:
    file = {"fileName": "me.png", "contentType": "image/png", "fileSize": len(PNG)}
    reply = await client.post(f"{USER}/api/profiles/me/image/presigned-url", headers=who.headers, json=file)
    assert reply.status_code == 200, reply.text
    return {**reply.json(), **file}


async def _register_picture(client: httpx.AsyncClient, who: Person, slot: dict[str, Any]) -> httpx.Response:
    body = {key: slot[key] for key in ("fileKey", "fileName", "contentType", "fileSize")}
    return await client.post(f"{USER}/api/profiles/me/image/attachment", headers=who.headers, json=body)


async def test_a_profile_picture_slot_is_bound_to_its_type_and_size(
    client: httpx.AsyncClient, stack: StackInfo
) -> None:
    crew = await team(client)
    alice = crew.alice
    slot = await _profile_slot(client, alice)
    assert {"content-type", "content-length", "host"} <= _signed_headers(slot["uploadUrl"])
    await _put(slot["uploadUrl"], HTML, "text/html")
    refused = await _register_picture(client, alice, slot)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["field"] == "fileKey"

    # The declared file is taken, and stored to be served as a download of the declared type (the
    # picture's URL is the bucket's public one, which the dev stack's bucket does not open: ask S3).
    await _put(slot["uploadUrl"], PNG, "image/png")
    accepted = await _register_picture(client, alice, slot)
    assert accepted.status_code == 201, accepted.text
    stored = await asyncio.to_thread(stack.s3.client().stat_object, stack.s3.bucket, slot["fileKey"])
    assert (stored.size, stored.content_type) == (len(PNG), "image/png")
    assert (stored.metadata or {})["Content-Disposition"].startswith("attachment;")
