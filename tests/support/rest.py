"""Workspaces, projects and files through the real gateway, as the web client makes them.

Board, user, security and integration tests all need a workspace with members, a project or an upload;
they make them here, through the same routes, so a change of those routes is one change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.people import Person, login

BOARD = "/api/svc/board"
USER = "/api/svc/user"
NOTI = "/api/svc/noti"


@dataclass(frozen=True, slots=True)
class Team:
    """A workspace with its owner and two more members, and an outsider of another workspace."""

    workspace_id: str
    owner: Person
    alice: Person
    bob: Person
    outsider: Person
    other_workspace_id: str


async def call(
    client: httpx.AsyncClient, verb: str, path: str, who: Person, *, status: int = 200, **kwargs: Any
) -> Any:
    """A board call through the gateway; asserts the status and returns ``data`` of the envelope."""
    reply = await client.request(
        verb, BOARD + path, headers={**who.headers, **kwargs.pop("headers", {})}, **kwargs
    )
    assert reply.status_code == status, f"{verb} {path}: {reply.status_code} {reply.text}"
    body = reply.json()
    if 200 <= status < 300 and isinstance(body, dict) and "data" in body:
        assert body["requestId"] == reply.headers["x-request-id"]
        return body["data"]
    return body


async def workspace(client: httpx.AsyncClient, owner: Person, *members: Person) -> str:
    """A new workspace of ``owner`` with ``members`` invited (members at once)."""
    reply = await client.post(
        f"{USER}/api/workspaces/create",
        headers=owner.headers,
        json={"workspaceName": "Board team", "workspaceDescription": "-"},
    )
    assert reply.status_code == 201, reply.text
    workspace_id: str = reply.json()["workspaceId"]
    for member in members:
        invited = await client.post(
            f"{USER}/api/workspaces/{workspace_id}/members/invite",
            headers=owner.headers,
            json={"email": member.email},
        )
        assert invited.status_code in (200, 201), invited.text
    return workspace_id


async def team(client: httpx.AsyncClient) -> Team:
    """A workspace with an owner and two members, plus an outsider who owns another workspace."""
    owner, alice, bob, outsider = (
        await login(client, "owner"),
        await login(client, "alice"),
        await login(client, "bob"),
        await login(client, "outsider"),
    )
    workspace_id = await workspace(client, owner, alice, bob)
    other = await workspace(client, outsider)
    return Team(workspace_id, owner, alice, bob, outsider, other)


async def project(
    client: httpx.AsyncClient,
    who: Person,
    workspace_id: str,
    name: str = "Apollo",
    *,
    members: Sequence[Person] = (),
) -> Any:
    """A new project of ``who`` (the contract's Project), with ``members`` joined as project MEMBERs."""
    created = await call(
        client, "POST", "/api/projects", who, status=201, json={"workspaceId": workspace_id, "name": name}
    )
    for member in members:
        await join_project(client, who, member, created["projectId"])
    return created


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def upload(client: httpx.AsyncClient, who: Person, workspace_id: str, entity: str) -> str:
    """A TEMP attachment of ``who``: a presigned URL, then the browser's PUT straight to S3."""
    ticket = await call(
        client,
        "POST",
        "/api/attachments/presigned-url",
        who,
        json={
            "workspaceId": workspace_id,
            "fileName": "shot.png",
            "fileSize": len(PNG),
            "contentType": "image/png",
            "entityType": entity,
        },
    )
    assert ticket["expiresIn"] == 300
    # No Authorization header, the same content type as announced: what the web client sends.
    async with httpx.AsyncClient(timeout=15) as s3:
        put = await s3.put(ticket["uploadUrl"], content=PNG, headers={"Content-Type": "image/png"})
    assert put.status_code == 200, put.text
    attachment_id: str = ticket["attachmentId"]
    return attachment_id


async def join_project(client: httpx.AsyncClient, manager: Person, who: Person, project_id: str) -> None:
    """``who`` asks to join the project and ``manager`` (its OWNER or an ADMIN) approves: a MEMBER."""
    request = await call(
        client, "POST", "/api/join-requests", who, status=201, json={"projectId": project_id}
    )
    await call(
        client, "PUT", f"/api/join-requests/{request['requestId']}", manager, json={"status": "APPROVED"}
    )


async def remove_from_workspace(
    client: httpx.AsyncClient, owner: Person, workspace_id: str, who: Person
) -> None:
    """``owner`` removes ``who`` from the workspace (through the user service, as the web client does)."""
    members = await client.get(f"{USER}/api/workspaces/{workspace_id}/members", headers=owner.headers)
    assert members.status_code == 200, members.text
    (member,) = [m for m in members.json() if m["userId"] == who.user_id]
    removed = await client.delete(
        f"{USER}/api/workspaces/{workspace_id}/members/{member['workspaceMemberId']}", headers=owner.headers
    )
    assert removed.status_code == 200, removed.text
