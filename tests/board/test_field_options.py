"""Custom field options through the real gateway."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support import Person, call, login, project, team

OPTIONS = "/api/field-options"


def _field(body: Any) -> str | None:
    field: str | None = body["error"].get("field")
    return field


async def _options(client: httpx.AsyncClient, who: Person, project_id: str, field_type: str) -> list[Any]:
    listed: list[Any] = await call(
        client, "GET", OPTIONS, who, params={"projectId": project_id, "fieldType": field_type}
    )
    return listed


async def test_create_list_update_delete_reorder(client: httpx.AsyncClient) -> None:
    t = await team(client)
    pid = (await project(client, t.owner, t.workspace_id))["projectId"]
    stages = await _options(client, t.bob, pid, "stage")
    assert [o["value"] for o in stages] == ["pending", "in_progress", "review", "approved", "deleted"]
    assert all(o["projectId"] == pid and o["fieldType"] == "stage" for o in stages)

    created = await call(
        client,
        "POST",
        OPTIONS,
        t.owner,
        status=201,
        json={
            "projectId": pid,
            "fieldType": "stage",
            "value": "blocked",
            "label": "Blocked",
            "color": "#abc",
        },
    )
    assert (created["value"], created["label"], created["color"]) == ("blocked", "Blocked", "#abc")
    assert created["displayOrder"] == 6  # after the last one when not given
    assert created["isSystemDefault"] is False
    placed = await call(
        client,
        "POST",
        OPTIONS,
        t.owner,
        status=201,
        json={
            "projectId": pid,
            "fieldType": "role",
            "value": "ops",
            "label": "Ops",
            "color": "#11223344",
            "displayOrder": 0,
        },
    )
    assert (await _options(client, t.owner, pid, "role"))[0]["optionId"] == placed["optionId"]

    patched = await call(
        client,
        "PATCH",
        f"{OPTIONS}/{created['optionId']}",
        t.owner,
        json={"label": "Stuck", "color": "#FF000080"},
    )
    assert (patched["value"], patched["label"], patched["color"]) == ("blocked", "Stuck", "#FF000080")
    assert patched["displayOrder"] == 6
    moved = await call(client, "PATCH", f"{OPTIONS}/{created['optionId']}", t.owner, json={"displayOrder": 0})
    assert (moved["label"], moved["displayOrder"]) == ("Stuck", 0)
    assert (await _options(client, t.owner, pid, "stage"))[0]["value"] == "blocked"

    # Reorder: every option of the field, each once.
    current = [o["optionId"] for o in await _options(client, t.owner, pid, "stage")]
    wanted = current[::-1]
    reordered = await call(
        client,
        "PUT",
        f"{OPTIONS}/reorder",
        t.owner,
        json={"projectId": pid, "fieldType": "stage", "optionIds": wanted},
    )
    assert [o["optionId"] for o in reordered] == wanted
    assert [o["displayOrder"] for o in reordered] == list(range(1, len(wanted) + 1))
    assert [o["optionId"] for o in await _options(client, t.owner, pid, "stage")] == wanted
    settings = await call(client, "GET", f"/api/projects/{pid}/init-settings", t.owner)
    assert [o["optionId"] for o in settings["fields"][0]["options"]] == wanted
    for bad in (
        wanted[1:],
        [*wanted, wanted[0]],
        [*wanted[1:], placed["optionId"]],
        [*wanted, str(uuid.uuid4())],
    ):
        refused = await call(
            client,
            "PUT",
            f"{OPTIONS}/reorder",
            t.owner,
            status=400,
            json={"projectId": pid, "fieldType": "stage", "optionIds": bad},
        )
        assert _field(refused) == "optionIds"

    deleted = await call(client, "DELETE", f"{OPTIONS}/{created['optionId']}", t.owner)
    assert deleted == {"message": "Field option deleted successfully"}
    assert "blocked" not in [o["value"] for o in await _options(client, t.owner, pid, "stage")]
    await call(client, "DELETE", f"{OPTIONS}/{created['optionId']}", t.owner, status=404)
    await call(client, "PATCH", f"{OPTIONS}/{created['optionId']}", t.owner, status=404, json={"label": "x"})


async def test_create_without_project_uses_the_last_opened(client: httpx.AsyncClient) -> None:
    t = await team(client)
    first = (await project(client, t.owner, t.workspace_id, "First"))["projectId"]
    second = (await project(client, t.owner, t.workspace_id, "Second"))["projectId"]
    body = {"fieldType": "importance", "value": "blocker", "label": "Blocker", "color": "#000000"}
    refused = await call(client, "POST", OPTIONS, t.owner, status=400, json=body)
    assert _field(refused) == "projectId"

    await call(client, "GET", f"/api/projects/{second}/init-settings", t.owner)
    await call(client, "GET", f"/api/projects/{first}/init-settings", t.owner)
    created = await call(client, "POST", OPTIONS, t.owner, status=201, json=body)
    assert created["projectId"] == first
    settings = await call(client, "GET", f"/api/projects/{first}/init-settings", t.owner)
    importance = settings["fields"][1]["options"]
    assert importance[-1]["optionValue"] == "blocker"
    assert "blocker" not in [o["value"] for o in await _options(client, t.owner, second, "importance")]
    # Listing without a project id lists the current project's too.
    listed = await call(client, "GET", OPTIONS, t.owner, params={"fieldType": "importance"})
    assert listed[-1]["optionId"] == created["optionId"]
    # Another user's current project is their own.
    await call(client, "GET", OPTIONS, t.bob, status=400, params={"fieldType": "importance"})


async def test_validation_and_permissions(client: httpx.AsyncClient) -> None:
    t = await team(client)
    pid = (await project(client, t.owner, t.workspace_id))["projectId"]
    other = (await project(client, t.owner, t.workspace_id, "Other"))["projectId"]
    good = {
        "projectId": pid,
        "fieldType": "stage",
        "value": "qa_check",
        "label": "QA check",
        "color": "#123456",
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "fieldType": "priority"}, "fieldType"),
        ({**good, "fieldType": ""}, "fieldType"),
        ({**good, "value": "   "}, "value"),
        ({**good, "value": "v" * 101}, "value"),
        ({**good, "label": ""}, "label"),
        ({**good, "label": "l" * 201}, "label"),
        ({**good, "color": "red"}, "color"),
        ({**good, "color": "#12345"}, "color"),
        ({**good, "color": "#GGGGGG"}, "color"),
        ({**good, "displayOrder": -1}, "displayOrder"),
        ({**good, "projectId": "nope"}, "projectId"),
        ({**good, "value": "pending"}, "value"),  # a default option's value is taken
    ]
    for body, field in cases:
        reply = await call(client, "POST", OPTIONS, t.owner, status=400, json=body)
        assert _field(reply) == field, (body, reply)
    await call(client, "POST", OPTIONS, t.owner, status=201, json=good)
    duplicate = await call(client, "POST", OPTIONS, t.owner, status=400, json=good)
    assert _field(duplicate) == "value"
    assert "qa_check" in duplicate["error"]["message"]
    # The same value is free in another field and in another project.
    await call(client, "POST", OPTIONS, t.owner, status=201, json={**good, "fieldType": "role"})
    await call(client, "POST", OPTIONS, t.owner, status=201, json={**good, "projectId": other})
    bad_type = await call(
        client, "GET", OPTIONS, t.owner, status=400, params={"projectId": pid, "fieldType": "x"}
    )
    assert _field(bad_type) == "fieldType"
    no_type = await call(client, "GET", OPTIONS, t.owner, status=400, params={"projectId": pid})
    assert _field(no_type) == "fieldType"

    option = (await _options(client, t.owner, pid, "stage"))[0]
    path = f"{OPTIONS}/{option['optionId']}"
    assert _field(await call(client, "PATCH", path, t.owner, status=400, json={"color": "blue"})) == "color"
    assert _field(await call(client, "PATCH", path, t.owner, status=400, json={"label": ""})) == "label"
    assert _field(await call(client, "PATCH", f"{OPTIONS}/nope", t.owner, status=400, json={})) == "optionId"

    # Workspace members read; only the project's OWNER and ADMINs change.
    assert await _options(client, t.alice, pid, "stage")
    denied = {**good, "value": "alice"}
    refused = await call(client, "POST", OPTIONS, t.alice, status=403, json=denied)
    assert refused["error"]["code"] == "FORBIDDEN"
    await call(client, "PATCH", path, t.alice, status=403, json={"label": "Mine"})
    await call(client, "DELETE", path, t.alice, status=403)
    stage_ids = [o["optionId"] for o in await _options(client, t.owner, pid, "stage")]
    reorder = {"projectId": pid, "fieldType": "stage", "optionIds": stage_ids}
    await call(client, "PUT", f"{OPTIONS}/reorder", t.alice, status=403, json=reorder)
    # An ADMIN of the project may.
    request = await call(client, "POST", "/api/join-requests", t.alice, status=201, json={"projectId": pid})
    await call(
        client, "PUT", f"/api/join-requests/{request['requestId']}", t.owner, json={"status": "APPROVED"}
    )
    await call(client, "POST", OPTIONS, t.alice, status=403, json=denied)
    await call(
        client,
        "PUT",
        f"/api/projects/{pid}/members/{t.alice.user_id}/role",
        t.owner,
        json={"roleName": "ADMIN"},
    )
    await call(client, "POST", OPTIONS, t.alice, status=201, json=denied)
    await call(client, "PATCH", path, t.alice, json={"label": "Waiting"})

    # Another workspace's options do not exist for the outsider.
    o = t.outsider
    await call(client, "GET", OPTIONS, o, status=404, params={"projectId": pid, "fieldType": "stage"})
    await call(client, "POST", OPTIONS, o, status=404, json=good)
    await call(client, "PATCH", path, o, status=404, json={"label": "x"})
    await call(client, "DELETE", path, o, status=404)
    await call(client, "PUT", f"{OPTIONS}/reorder", o, status=404, json=reorder)
    stranger = await login(client, "stranger")
    await call(client, "GET", f"/api/projects/{pid}/init-settings", stranger, status=404)
    assert (await _options(client, t.owner, pid, "stage"))[0]["label"] == "Waiting"


async def test_deleting_an_option_clears_it_from_boards(client: httpx.AsyncClient) -> None:
    t = await team(client)
    pid = (await project(client, t.owner, t.workspace_id))["projectId"]
    blocked = await call(
        client,
        "POST",
        OPTIONS,
        t.owner,
        status=201,
        json={
            "projectId": pid,
            "fieldType": "stage",
            "value": "blocked",
            "label": "Blocked",
            "color": "#000",
        },
    )
    fields = {"stage": "blocked", "importance": "high", "role": "qa"}
    held = await call(
        client,
        "POST",
        "/api/boards",
        t.owner,
        status=201,
        json={"projectId": pid, "title": "Held", "customFields": fields},
    )
    other = await call(
        client,
        "POST",
        "/api/boards",
        t.owner,
        status=201,
        json={"projectId": pid, "title": "Other", "customFields": {**fields, "stage": "pending"}},
    )
    await call(client, "DELETE", f"{OPTIONS}/{blocked['optionId']}", t.owner)
    after = await call(client, "GET", f"/api/boards/{held['boardId']}", t.owner)
    # The key is gone from the board (a dangling option id would read back as "stage": "").
    assert "stage" not in after["customFields"]
    assert (after["customFields"]["importance"], after["customFields"]["role"]) == ("high", "qa")
    untouched = await call(client, "GET", f"/api/boards/{other['boardId']}", t.owner)
    assert untouched["customFields"]["stage"] == "pending"
