"""Projects, members, join requests and init-settings through the real gateway."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.support import (
    BOARD,
    USER,
    Person,
    Team,
    call,
    login,
    project,
    team,
    workspace,
)

DEFAULT_STAGES = [
    ("pending", "대기", "#F59E0B"),
    ("in_progress", "진행중", "#3B82F6"),
    ("review", "검토", "#8B5CF6"),
    ("approved", "완료", "#10B981"),
    ("deleted", "삭제", "#EF4444"),
]
DEFAULT_IMPORTANCE = [
    ("urgent", "긴급", "#EF4444"),
    ("high", "높음", "#F97316"),
    ("normal", "보통", "#10B981"),
    ("low", "낮음", "#6B7280"),
]
DEFAULT_ROLES = [
    ("developer", "개발자", "#8B5CF6"),
    ("planner", "기획자", "#EC4899"),
    ("designer", "디자이너", "#F59E0B"),
    ("qa", "QA", "#06B6D4"),
]


def _field(body: Any) -> str | None:
    """The field a 4xx error names."""
    field: str | None = body["error"].get("field")
    return field


async def _nickname(client: httpx.AsyncClient, who: Person, workspace_id: str, nick: str) -> None:
    """Give ``who`` a workspace profile with this nickname."""
    reply = await client.put(
        f"{USER}/api/profiles/me",
        headers={**who.headers, "X-Workspace-Id": workspace_id},
        json={"nickName": nick, "workspaceId": workspace_id, "userId": who.user_id},
    )
    assert reply.status_code == 200, reply.text


async def _join(client: httpx.AsyncClient, owner: Person, who: Person, project_id: str) -> None:
    """``who`` asks to join the project and ``owner`` approves."""
    request = await call(
        client, "POST", "/api/join-requests", who, status=201, json={"projectId": project_id}
    )
    await call(
        client, "PUT", f"/api/join-requests/{request['requestId']}", owner, json={"status": "APPROVED"}
    )


async def test_create_read_update_delete(client: httpx.AsyncClient) -> None:
    t = await team(client)
    created = await call(
        client,
        "POST",
        "/api/projects",
        t.owner,
        status=201,
        json={
            "workspaceId": t.workspace_id,
            "name": "  Apollo  ",
            "description": "Moon landing",
            "startDate": "2025-01-01T00:00:00Z",
            "dueDate": "2025-02-01T00:00:00Z",
        },
    )
    assert created["name"] == "Apollo"
    assert created["description"] == "Moon landing"
    assert created["ownerId"] == t.owner.user_id
    assert created["workspaceId"] == t.workspace_id
    assert created["attachments"] == []
    assert created["isPublic"] is False
    assert created["startDate"].startswith("2025-01-01T00:00:00")
    pid = created["projectId"]

    got = await call(client, "GET", f"/api/projects/{pid}", t.alice)
    assert got["projectId"] == pid
    assert got["ownerEmail"] == t.owner.email
    assert got["ownerName"]

    updated = await call(
        client,
        "PUT",
        f"/api/projects/{pid}",
        t.owner,
        json={"name": "Apollo 11", "dueDate": "2025-03-01T00:00:00Z"},
    )
    assert updated["name"] == "Apollo 11"
    assert updated["description"] == "Moon landing"
    assert updated["dueDate"].startswith("2025-03-01")
    assert (await call(client, "GET", f"/api/projects/{pid}", t.bob))["name"] == "Apollo 11"

    # A workspace member who does not own the project may read it but not change it.
    refused = await call(client, "PUT", f"/api/projects/{pid}", t.alice, status=403, json={"name": "Mine"})
    assert refused["error"]["message"] == "Only project owner can update project"
    refused = await call(client, "DELETE", f"/api/projects/{pid}", t.alice, status=403)
    assert refused["error"]["message"] == "Only project owner can delete project"
    # Even an ADMIN of the project may not.
    await _join(client, t.owner, t.alice, pid)
    await call(
        client,
        "PUT",
        f"/api/projects/{pid}/members/{t.alice.user_id}/role",
        t.owner,
        json={"roleName": "ADMIN"},
    )
    await call(client, "DELETE", f"/api/projects/{pid}", t.alice, status=403)

    deleted = await call(client, "DELETE", f"/api/projects/{pid}", t.owner)
    assert deleted == {"message": "Project deleted successfully"}
    await call(client, "GET", f"/api/projects/{pid}", t.owner, status=404)
    await call(client, "GET", f"/api/projects/{pid}/init-settings", t.owner, status=404)


async def test_listing_is_newest_first(client: httpx.AsyncClient) -> None:
    t = await team(client)
    names = ["First", "Second", "Third"]
    ids = [(await project(client, t.owner, t.workspace_id, name))["projectId"] for name in names]
    listed = await call(client, "GET", f"/api/projects/workspace/{t.workspace_id}", t.bob)
    assert [p["projectId"] for p in listed] == ids[::-1]
    assert all(p["ownerEmail"] == t.owner.email for p in listed)
    page = await call(client, "GET", "/api/projects", t.alice, params={"workspaceId": t.workspace_id})
    assert [p["projectId"] for p in page["projects"]] == ids[::-1]
    assert (page["total"], page["page"], page["limit"]) == (3, 1, 3)
    empty = await call(client, "GET", f"/api/projects/workspace/{t.other_workspace_id}", t.outsider)
    assert empty == []
    missing = await call(client, "GET", "/api/projects", t.alice, status=400)
    assert _field(missing) == "workspaceId"


async def test_default_project_is_the_first(client: httpx.AsyncClient) -> None:
    t = await team(client)
    path = f"/api/projects/workspace/{t.workspace_id}/default"
    missing = await call(client, "GET", path, t.owner, status=404)
    assert missing["error"]["message"] == "Default project not found"
    first = await project(client, t.owner, t.workspace_id, "First")
    second = await project(client, t.alice, t.workspace_id, "Second")
    assert (await call(client, "GET", path, t.bob))["projectId"] == first["projectId"]
    # The default goes to the oldest remaining project when it is deleted.
    await call(client, "DELETE", f"/api/projects/{first['projectId']}", t.owner)
    assert (await call(client, "GET", path, t.bob))["projectId"] == second["projectId"]
    await call(client, "DELETE", f"/api/projects/{second['projectId']}", t.alice)
    await call(client, "GET", path, t.bob, status=404)
    await call(client, "GET", path, t.outsider, status=403)


async def test_search_pages(client: httpx.AsyncClient) -> None:
    t = await team(client)
    await project(client, t.owner, t.workspace_id, "Rocket one")
    await project(client, t.owner, t.workspace_id, "Other")
    await call(
        client,
        "POST",
        "/api/projects",
        t.owner,
        status=201,
        json={"workspaceId": t.workspace_id, "name": "Booster", "description": "a ROCKET stage"},
    )
    await project(client, t.owner, t.workspace_id, "rocket 100%")

    def search(**params: Any) -> Any:
        return call(
            client, "GET", "/api/projects/search", t.bob, params={"workspaceId": t.workspace_id, **params}
        )

    first = await search(query="rocket", page=1, limit=2)
    assert (first["total"], first["page"], first["limit"]) == (3, 1, 2)
    assert [p["name"] for p in first["projects"]] == ["rocket 100%", "Booster"]
    second = await search(query="Rocket", page=2, limit=2)
    assert [p["name"] for p in second["projects"]] == ["Rocket one"]
    assert second["total"] == 3
    # Out-of-range paging falls back to page 1 and limit 10.
    fallback = await search(query="rocket", page=0, limit=1000)
    assert (fallback["page"], fallback["limit"], len(fallback["projects"])) == (1, 10, 3)
    # % and _ are matched literally.
    literal = await search(query="100%")
    assert [p["name"] for p in literal["projects"]] == ["rocket 100%"]
    assert (await search(query="o_e"))["total"] == 0
    no_query = await call(
        client, "GET", "/api/projects/search", t.bob, status=400, params={"workspaceId": t.workspace_id}
    )
    assert _field(no_query) == "query"
    await call(
        client,
        "GET",
        "/api/projects/search",
        t.outsider,
        status=403,
        params={"workspaceId": t.workspace_id, "query": "rocket"},
    )


async def test_init_settings(client: httpx.AsyncClient) -> None:
    t = await team(client)
    created = await project(client, t.owner, t.workspace_id)
    settings = await call(client, "GET", f"/api/projects/{created['projectId']}/init-settings", t.alice)
    head = settings["project"]
    assert head["projectId"] == created["projectId"]
    assert head["workspaceName"] == "Board team"
    assert head["workspaceEmail"] == t.owner.email
    assert head["ownerEmail"] == t.owner.email
    assert head["name"] == "Apollo"
    fields = settings["fields"]
    assert [f["fieldId"] for f in fields] == ["stage", "importance", "role"]
    assert [f["fieldName"] for f in fields] == ["Stage", "Importance", "Role"]
    assert all(f["fieldType"] == "single_select" and f["isRequired"] for f in fields)
    assert fields[0]["description"] == "Current stage of the board"
    for field, expected in zip(fields, (DEFAULT_STAGES, DEFAULT_IMPORTANCE, DEFAULT_ROLES), strict=True):
        options = field["options"]
        assert [(o["optionValue"], o["optionLabel"], o["color"]) for o in options] == expected
        assert [o["displayOrder"] for o in options] == list(range(1, len(expected) + 1))
        assert all(o["fieldId"] == field["fieldId"] for o in options)
    type_ids = [t["typeId"] for t in settings["fieldTypes"]]
    assert "single_select" in type_ids
    assert {"select", "text", "date", "user"} <= set(type_ids)


async def test_members_with_names_and_role_rules(client: httpx.AsyncClient) -> None:
    t = await team(client)
    pid = (await project(client, t.owner, t.workspace_id))["projectId"]
    await _nickname(client, t.alice, t.workspace_id, "Alice in Board")
    await _join(client, t.owner, t.alice, pid)
    await _join(client, t.owner, t.bob, pid)
    members = await call(client, "GET", f"/api/projects/{pid}/members", t.bob)
    assert [(m["userId"], m["roleName"]) for m in members] == [
        (t.owner.user_id, "OWNER"),
        (t.alice.user_id, "MEMBER"),
        (t.bob.user_id, "MEMBER"),
    ]
    assert [m["userEmail"] for m in members] == [t.owner.email, t.alice.email, t.bob.email]
    assert members[1]["userName"] == "Alice in Board"
    assert all(m["memberId"] and m["projectId"] == pid and m["joinedAt"] for m in members)

    role = f"/api/projects/{pid}/members/{{}}/role"
    changed = await call(client, "PUT", role.format(t.alice.user_id), t.owner, json={"roleName": "ADMIN"})
    assert (changed["userId"], changed["roleName"]) == (t.alice.user_id, "ADMIN")
    # Only the owner changes roles, even an ADMIN may not.
    refused = await call(
        client, "PUT", role.format(t.bob.user_id), t.alice, status=403, json={"roleName": "ADMIN"}
    )
    assert refused["error"]["message"] == "Only project owner can change member roles"
    # Ownership is never handed out, and the owner's role never changes.
    owner_role = await call(
        client, "PUT", role.format(t.bob.user_id), t.owner, status=400, json={"roleName": "OWNER"}
    )
    assert _field(owner_role) == "roleName"
    demote = await call(
        client, "PUT", role.format(t.owner.user_id), t.owner, status=400, json={"roleName": "MEMBER"}
    )
    assert _field(demote) == "memberId"
    missing = await call(client, "PUT", role.format(t.bob.user_id), t.owner, status=400, json={})
    assert _field(missing) == "roleName"
    stranger = await login(client, "stranger")
    await call(client, "PUT", role.format(stranger.user_id), t.owner, status=404, json={"roleName": "ADMIN"})
    bad = await call(
        client, "PUT", role.format("not-a-uuid"), t.owner, status=400, json={"roleName": "ADMIN"}
    )
    assert _field(bad) == "memberId"
    back = await call(client, "PUT", role.format(t.alice.user_id), t.owner, json={"roleName": "member"})
    assert back["roleName"] == "MEMBER"


async def test_remove_member_rules(client: httpx.AsyncClient) -> None:
    t = await team(client)
    carol = await login(client, "carol")
    workspace_id = await workspace(client, t.owner, t.alice, t.bob, carol)
    pid = (await project(client, t.owner, workspace_id))["projectId"]
    for who in (t.alice, t.bob, carol):
        await _join(client, t.owner, who, pid)
    await call(
        client,
        "PUT",
        f"/api/projects/{pid}/members/{t.alice.user_id}/role",
        t.owner,
        json={"roleName": "ADMIN"},
    )
    remove = f"/api/projects/{pid}/members/{{}}"
    refused = await call(client, "DELETE", remove.format(carol.user_id), t.bob, status=403)
    assert refused["error"]["message"] == "Only project owner or admin can remove members"
    owner = await call(client, "DELETE", remove.format(t.owner.user_id), t.alice, status=400)
    assert (_field(owner), owner["error"]["message"]) == ("memberId", "memberId: Cannot remove project owner")
    own = await call(client, "DELETE", remove.format(t.owner.user_id), t.owner, status=400)
    assert _field(own) == "memberId"
    myself = await call(client, "DELETE", remove.format(t.alice.user_id), t.alice, status=400)
    assert "yourself" in myself["error"]["message"]
    assert (await call(client, "DELETE", remove.format(t.bob.user_id), t.alice)) == {
        "message": "Member removed successfully"
    }
    await call(client, "DELETE", remove.format(t.bob.user_id), t.alice, status=404)
    await call(client, "DELETE", remove.format(carol.user_id), t.owner)
    members = await call(client, "GET", f"/api/projects/{pid}/members", t.owner)
    assert [m["userId"] for m in members] == [t.owner.user_id, t.alice.user_id]


async def test_join_request_flow(client: httpx.AsyncClient) -> None:
    t = await team(client)
    pid = (await project(client, t.owner, t.workspace_id))["projectId"]
    created = await call(client, "POST", "/api/join-requests", t.bob, status=201, json={"projectId": pid})
    assert (created["status"], created["userId"], created["projectId"]) == ("PENDING", t.bob.user_id, pid)
    duplicate = await call(client, "POST", "/api/join-requests", t.bob, status=409, json={"projectId": pid})
    assert duplicate["error"]["code"] == "PENDING_REQUEST_EXISTS"
    owner_again = await call(
        client, "POST", "/api/join-requests", t.owner, status=409, json={"projectId": pid}
    )
    assert owner_again["error"]["code"] == "ALREADY_MEMBER"

    # Only the owner and admins see and decide requests.
    listing = f"/api/projects/{pid}/join-requests"
    refused = await call(client, "GET", listing, t.bob, status=403)
    assert refused["error"]["message"] == "Only project owner or admin can view join requests"
    decide = f"/api/join-requests/{created['requestId']}"
    await call(client, "PUT", decide, t.alice, status=403, json={"status": "APPROVED"})
    pending = await call(client, "GET", listing, t.owner, params={"status": "PENDING"})
    assert [(r["userId"], r["userEmail"]) for r in pending] == [(t.bob.user_id, t.bob.email)]
    bad_status = await call(client, "GET", listing, t.owner, status=400, params={"status": "LOST"})
    assert _field(bad_status) == "status"
    bad_decision = await call(client, "PUT", decide, t.owner, status=400, json={"status": "PENDING"})
    assert _field(bad_decision) == "status"

    approved = await call(client, "PUT", decide, t.owner, json={"status": "APPROVED"})
    assert approved["status"] == "APPROVED"
    members = await call(client, "GET", f"/api/projects/{pid}/members", t.owner)
    assert (members[-1]["userId"], members[-1]["roleName"]) == (t.bob.user_id, "MEMBER")
    processed = await call(client, "PUT", decide, t.owner, status=400, json={"status": "REJECTED"})
    assert processed["error"]["message"] == "Join request has already been processed"
    member = await call(client, "POST", "/api/join-requests", t.bob, status=409, json={"projectId": pid})
    assert member["error"]["code"] == "ALREADY_MEMBER"

    # A rejected request leaves no member and may be asked again.
    asked = await call(client, "POST", "/api/join-requests", t.alice, status=201, json={"projectId": pid})
    rejected = await call(
        client, "PUT", f"/api/join-requests/{asked['requestId']}", t.owner, json={"status": "rejected"}
    )
    assert rejected["status"] == "REJECTED"
    assert t.alice.user_id not in [
        m["userId"] for m in await call(client, "GET", f"/api/projects/{pid}/members", t.owner)
    ]
    await call(client, "POST", "/api/join-requests", t.alice, status=201, json={"projectId": pid})
    everything = await call(client, "GET", listing, t.owner)
    assert [r["status"] for r in everything] == ["PENDING", "REJECTED", "APPROVED"]
    await call(
        client, "PUT", f"/api/join-requests/{uuid.uuid4()}", t.owner, status=404, json={"status": "APPROVED"}
    )
    missing = await call(client, "POST", "/api/join-requests", t.bob, status=400, json={})
    assert _field(missing) == "projectId"


async def test_outsider_sees_nothing(client: httpx.AsyncClient) -> None:
    t: Team = await team(client)
    pid = (await project(client, t.owner, t.workspace_id))["projectId"]
    request = await call(client, "POST", "/api/join-requests", t.bob, status=201, json={"projectId": pid})
    o = t.outsider
    for verb, path, body in (
        ("GET", f"/api/projects/{pid}", None),
        ("PUT", f"/api/projects/{pid}", {"name": "Taken"}),
        ("DELETE", f"/api/projects/{pid}", None),
        ("GET", f"/api/projects/{pid}/init-settings", None),
        ("GET", f"/api/projects/{pid}/members", None),
        ("GET", f"/api/projects/{pid}/join-requests", None),
        ("DELETE", f"/api/projects/{pid}/members/{t.owner.user_id}", None),
        ("PUT", f"/api/projects/{pid}/members/{t.owner.user_id}/role", {"roleName": "ADMIN"}),
        ("POST", "/api/join-requests", {"projectId": pid}),
        ("PUT", f"/api/join-requests/{request['requestId']}", {"status": "APPROVED"}),
    ):
        await call(client, verb, path, o, status=404, json=body)
    refused = await call(
        client, "POST", "/api/projects", o, status=403, json={"workspaceId": t.workspace_id, "name": "Heist"}
    )
    assert refused["error"]["message"] == "You are not a member of this workspace"
    await call(client, "GET", f"/api/projects/workspace/{t.workspace_id}", o, status=403)
    # Nothing changed.
    assert (await call(client, "GET", f"/api/projects/{pid}", t.owner))["name"] == "Apollo"


async def test_bad_input_names_the_field(client: httpx.AsyncClient) -> None:
    t = await team(client)
    pid = (await project(client, t.owner, t.workspace_id))["projectId"]
    cases: list[tuple[str, str, dict[str, Any] | None, str]] = [
        ("POST", "/api/projects", {"workspaceId": t.workspace_id, "name": " A "}, "name"),
        ("POST", "/api/projects", {"workspaceId": t.workspace_id, "name": "x" * 101}, "name"),
        (
            "POST",
            "/api/projects",
            {"workspaceId": t.workspace_id, "name": "Ok", "description": "d" * 501},
            "description",
        ),
        (
            "POST",
            "/api/projects",
            {
                "workspaceId": t.workspace_id,
                "name": "Dates",
                "startDate": "2025-03-01T00:00:00Z",
                "dueDate": "2025-02-01T00:00:00Z",
            },
            "startDate",
        ),
        (
            "POST",
            "/api/projects",
            {"workspaceId": t.workspace_id, "name": "Ok", "startDate": "soon"},
            "startDate",
        ),
        ("POST", "/api/projects", {"name": "No workspace"}, "workspaceId"),
        ("POST", "/api/projects", {"workspaceId": "nope", "name": "Bad id"}, "workspaceId"),
        (
            "POST",
            "/api/projects",
            {"workspaceId": t.workspace_id, "name": "Ok", "attachmentIds": ["x"]},
            "attachmentIds",
        ),
        ("PUT", f"/api/projects/{pid}", {"name": "A"}, "name"),
        # The order is checked against the dates the project keeps.
        (
            "PUT",
            f"/api/projects/{pid}",
            {"dueDate": "2020-01-01T00:00:00Z", "startDate": "2021-01-01T00:00:00Z"},
            "startDate",
        ),
        ("GET", "/api/projects/not-a-uuid", None, "projectId"),
        ("GET", "/api/projects/not-a-uuid/members", None, "projectId"),
        ("GET", "/api/projects/workspace/not-a-uuid", None, "workspaceId"),
    ]
    for verb, path, body, field in cases:
        reply = await call(client, verb, path, t.owner, status=400, json=body)
        assert reply["error"]["code"] == "VALIDATION_ERROR", (path, body, reply)
        assert _field(reply) == field, (path, body, reply)
    await call(client, "PUT", f"/api/projects/{pid}", t.owner, json={"startDate": "2025-01-01T00:00:00Z"})
    later = await call(
        client, "PUT", f"/api/projects/{pid}", t.owner, status=400, json={"dueDate": "2024-01-01T00:00:00Z"}
    )
    assert _field(later) == "startDate"
    await call(client, "GET", f"/api/projects/{uuid.uuid4()}", t.owner, status=404)


async def test_concurrent_requests_and_defaults(client: httpx.AsyncClient) -> None:
    t = await team(client)
    pid = (await project(client, t.owner, t.workspace_id))["projectId"]
    asked = await asyncio.gather(
        *(
            client.post(f"{BOARD}/api/join-requests", headers=t.bob.headers, json={"projectId": pid})
            for _ in range(6)
        )
    )
    assert sorted(r.status_code for r in asked) == [201, 409, 409, 409, 409, 409], [r.text for r in asked]
    assert {r.json()["error"]["code"] for r in asked if r.status_code == 409} == {"PENDING_REQUEST_EXISTS"}

    # Concurrent first projects of a workspace: exactly one becomes the default, the first one created.
    workspace_id = await workspace(client, t.owner)
    created = await asyncio.gather(
        *(
            client.post(
                f"{BOARD}/api/projects",
                headers=t.owner.headers,
                json={"workspaceId": workspace_id, "name": f"P{i}"},
            )
            for i in range(5)
        )
    )
    assert [r.status_code for r in created] == [201] * 5
    listed = await call(client, "GET", f"/api/projects/workspace/{workspace_id}", t.owner)
    path = f"/api/projects/workspace/{workspace_id}/default"
    assert (await call(client, "GET", path, t.owner))["projectId"] == listed[-1]["projectId"]
    # Deleting the two oldest at once leaves the next oldest as the default.
    deleted = await asyncio.gather(
        *(
            client.delete(f"{BOARD}/api/projects/{p['projectId']}", headers=t.owner.headers)
            for p in listed[-2:]
        )
    )
    assert [r.status_code for r in deleted] == [200, 200], [r.text for r in deleted]
    assert (await call(client, "GET", path, t.owner))["projectId"] == listed[-3]["projectId"]
