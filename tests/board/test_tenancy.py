"""Another tenant's ids get 403 or 404 on EVERY board route, and change nothing.

The route list is read from the board service's descriptors (what the gateway serves), so a new route
without a case in tests/support/board_cases.py fails :func:`test_every_board_route_has_an_intruder_case`.
"""

from __future__ import annotations

from typing import Any

import httpx

from gateway.routing import build_routes
from mesh import services_of
from tests.support import BOARD, Person, Team, call, project, team, upload
from tests.support.board_cases import CASES

# The board socket is a WebSocket (closed with 4404 for outsiders, tested in test_events.py).
SOCKETS = {("GET", "/ws/project/{project_id}")}


def _fill(template: Any, ids: dict[str, str]) -> Any:
    if isinstance(template, str):
        return template.format(**ids)
    if isinstance(template, list):
        return [_fill(item, ids) for item in template]
    if isinstance(template, dict):
        return {key: _fill(value, ids) for key, value in template.items()}
    return template


def test_every_board_route_has_an_intruder_case() -> None:
    served = {(route.verb, route.template.source) for route in build_routes(services_of("board"))}
    assert served - SOCKETS == set(CASES)


async def _victims(client: httpx.AsyncClient, crew: Team) -> dict[str, str]:
    """A project of the team with a board, a comment, an option, a join request and a confirmed file."""
    owner, alice = crew.owner, crew.alice
    pid = (await project(client, owner, crew.workspace_id, "Victim", members=(alice,)))["projectId"]
    file_id = await upload(client, alice, crew.workspace_id, "BOARD")
    board = await call(
        client,
        "POST",
        "/api/boards",
        alice,
        status=201,
        json={"projectId": pid, "title": "Secret plan", "attachmentIds": [file_id]},
    )
    comment = await call(
        client,
        "POST",
        "/api/comments",
        alice,
        status=201,
        json={"boardId": board["boardId"], "content": "hush"},
    )
    request = await call(client, "POST", "/api/join-requests", crew.bob, status=201, json={"projectId": pid})
    options = await call(client, "GET", f"/api/field-options?projectId={pid}&fieldType=stage", owner)
    pending = await call(
        client,
        "POST",
        "/api/attachments/presigned-url",
        alice,
        json={
            "workspaceId": crew.workspace_id,
            "fileName": "b.png",
            "fileSize": 10,
            "contentType": "image/png",
            "entityType": "BOARD",
        },
    )
    return {
        "workspace": crew.workspace_id,
        "project": pid,
        "board": board["boardId"],
        "comment": comment["commentId"],
        "request": request["requestId"],
        "option": options[0]["optionId"],
        "attachment": file_id,
        "file_key": pending["fileKey"],
        "member": owner.user_id,
        "intruder": crew.outsider.user_id,
    }


async def _snapshot(client: httpx.AsyncClient, owner: Person, ids: dict[str, str]) -> list[Any]:
    """What the victim's project looks like to its owner."""
    return [
        await call(client, "GET", f"/api/projects/{ids['project']}", owner),
        await call(client, "GET", f"/api/boards/{ids['board']}", owner),
        await call(client, "GET", f"/api/projects/{ids['project']}/init-settings", owner),
        await call(client, "GET", f"/api/projects/{ids['project']}/members", owner),
        await call(client, "GET", f"/api/projects/{ids['project']}/join-requests", owner),
    ]


async def test_an_outsider_is_refused_everywhere_and_changes_nothing(client: httpx.AsyncClient) -> None:
    crew = await team(client)
    ids = await _victims(client, crew)
    before = await _snapshot(client, crew.owner, ids)
    for (verb, _), (path, body) in CASES.items():
        reply = await client.request(
            verb, BOARD + _fill(path, ids), headers=crew.outsider.headers, json=_fill(body, ids)
        )
        assert reply.status_code in (403, 404), f"{verb} {path}: {reply.status_code} {reply.text}"
        assert "error" in reply.json()
    after = await _snapshot(client, crew.owner, ids)
    # Everything but the presigned URLs inside (they are signed anew on each read) is as it was.
    for item in (before[1], after[1]):
        for attachment in item["attachments"]:
            attachment.pop("fileUrl")
    assert after == before
