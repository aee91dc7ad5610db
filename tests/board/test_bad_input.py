"""Malformed input on every board route is a 4xx in the error envelope, never a 500.

A workspace member sends each route (the list from test_tenancy, itself checked against the
descriptors) a path with ids that are not UUIDs, an empty body, a body of wrong types, a JSON array and
text that is not JSON.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.support import BOARD, call, project, team
from tests.support.board_cases import CASES

WRONG_TYPES: dict[str, Any] = {
    "workspaceId": 7,
    "projectId": ["x"],
    "boardId": {"a": 1},
    "name": 3.5,
    "title": True,
    "content": [1],
    "customFields": "stage",
    "participants": "everyone",
    "userIds": "u",
    "startDate": "yesterday",
    "dueDate": 12,
    "attachmentIds": 5,
    "roleName": 1,
    "status": [],
    "fieldType": 2,
    "value": {},
    "label": [],
    "color": 0,
    "displayOrder": "first",
    "optionIds": "o",
    "fileSize": "big",
    "fileName": 9,
    "contentType": 9,
    "entityType": 9,
    "fileKey": 9,
    "groupByFieldName": 1,
    "newFieldValue": 2,
}


def _bad_path(path: str, ids: dict[str, str]) -> str:
    # Every {placeholder} becomes a string that is not a UUID.
    return re.sub(r"\{(\w+)\}", lambda match: ids.get(match.group(1), "not-a-uuid"), path)


async def test_malformed_input_never_fails_the_server(client: httpx.AsyncClient) -> None:
    crew = await team(client)
    pid = (await project(client, crew.owner, crew.workspace_id))["projectId"]
    good = {"workspace": crew.workspace_id, "project": pid}
    seen: list[tuple[str, str, int]] = []
    for (verb, _), (path, body) in CASES.items():
        variants: list[tuple[str, dict[str, Any]]] = [(_bad_path(path, {}), {"json": {}})]
        if body is not None:
            target = _bad_path(path, good)
            # An empty body may be fine (an update that changes nothing); it must not fail the server.
            empty = await client.request(verb, BOARD + target, headers=crew.owner.headers, json={})
            assert empty.status_code < 500, f"{verb} {target} {{}}: {empty.status_code} {empty.text}"
            variants += [
                (target, {"json": WRONG_TYPES}),
                (target, {"json": [1, 2]}),
                (target, {"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
            ]
        for url, extra in variants:
            headers = {**crew.owner.headers, **extra.pop("headers", {})}
            reply = await client.request(verb, BOARD + url, headers=headers, **extra)
            seen.append((verb, url, reply.status_code))
            assert 400 <= reply.status_code < 500, f"{verb} {url} {extra}: {reply.status_code} {reply.text}"
            assert reply.json()["error"]["message"], reply.text
    # The project is still there and intact: nothing above half-applied.
    assert (await call(client, "GET", f"/api/projects/{pid}", crew.owner))["name"] == "Apollo"
    assert len(seen) > 2 * len(CASES)
