"""The user service through the real gateway, as the web client calls it, and its internal RPCs over mTLS."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import httpx
import pytest
from wealist.user.v1 import internal_pb2, internal_pb2_grpc

from tests.support import USER, Mesh, Person, login

ZERO = "00000000-0000-0000-0000-000000000000"


async def _call(
    client: httpx.AsyncClient, verb: str, path: str, who: Person, *, status: int = 200, **kwargs: Any
) -> Any:
    reply = await client.request(
        verb, USER + path, headers={**who.headers, **kwargs.pop("headers", {})}, **kwargs
    )
    assert reply.status_code == status, f"{verb} {path}: {reply.status_code} {reply.text}"
    return reply.json()


async def _workspace(client: httpx.AsyncClient, owner: Person, name: str = "Team", **extra: Any) -> str:
    body = await _call(
        client, "POST", "/api/workspaces/create", owner, status=201, json={"workspaceName": name, **extra}
    )
    workspace_id: str = body["workspaceId"]
    return workspace_id


async def _member_id(client: httpx.AsyncClient, workspace_id: str, viewer: Person, user: Person) -> str:
    members = await _call(client, "GET", f"/api/workspaces/{workspace_id}/members", viewer)
    (found,) = [m for m in members if m["userId"] == user.user_id]
    member_id: str = found["workspaceMemberId"]
    return member_id


async def test_the_web_clients_journey(client: httpx.AsyncClient) -> None:
    owner, joiner, invitee = (
        await login(client, "own"),
        await login(client, "join"),
        await login(client, "inv"),
    )
    name = f"Journey {uuid.uuid4().hex[:8]}"
    wid = await _workspace(client, owner, name, workspaceDescription="-")

    mine = await _call(client, "GET", "/api/workspaces/all", owner)
    assert isinstance(mine, list)
    (entry,) = [w for w in mine if w["workspaceId"] == wid]
    assert entry["role"] == "OWNER"
    assert entry["owner"] is True
    assert entry["workspaceName"] == name
    assert entry["workspaceDescription"] == "-"

    found = await _call(client, "GET", f"/api/workspaces/public/{name.split()[1]}", joiner)
    assert [w["workspaceId"] for w in found] == [wid]

    request = await _call(
        client, "POST", "/api/workspaces/join-requests", joiner, status=201, json={"workspaceId": wid}
    )
    assert request["status"] == "PENDING"
    await _call(
        client, "POST", "/api/workspaces/join-requests", joiner, status=409, json={"workspaceId": wid}
    )

    # The joiner's own list shows the waiting request (the web client labels role PENDING "승인 대기").
    waiting = await _call(client, "GET", "/api/workspaces/all", joiner)
    assert [(w["workspaceId"], w["role"], w["owner"]) for w in waiting if w["workspaceId"] == wid] == [
        (wid, "PENDING", False)
    ]

    pending = await _call(client, "GET", f"/api/workspaces/{wid}/pendingMembers", owner)
    assert [(p["userId"], p["userEmail"], p["status"]) for p in pending] == [
        (joiner.user_id, joiner.email, "PENDING")
    ]
    assert pending[0]["nickName"]

    approved = await _call(
        client, "POST", f"/api/workspaces/{wid}/members/{joiner.user_id}/approve", owner, json={}
    )
    assert approved["status"] == "APPROVED"
    assert await _call(client, "GET", f"/api/workspaces/{wid}/pendingMembers", owner) == []
    joined = await _call(client, "GET", "/api/workspaces/all", joiner)
    assert [w["role"] for w in joined if w["workspaceId"] == wid] == ["MEMBER"]

    members = await _call(client, "GET", f"/api/workspaces/{wid}/members", joiner)
    assert {m["userId"]: m["roleName"] for m in members} == {owner.user_id: "OWNER", joiner.user_id: "MEMBER"}
    assert {m["userEmail"] for m in members} == {owner.email, joiner.email}

    joiner_member = await _member_id(client, wid, owner, joiner)
    promoted = await _call(
        client,
        "PUT",
        f"/api/workspaces/{wid}/members/{joiner_member}/role",
        owner,
        json={"roleName": "ADMIN"},
    )
    assert promoted["roleName"] == "ADMIN"

    invited = await _call(
        client,
        "POST",
        f"/api/workspaces/{wid}/members/invite",
        joiner,
        status=201,
        json={"email": invitee.email},
    )
    assert (invited["userId"], invited["roleName"], invited["userEmail"]) == (
        invitee.user_id,
        "MEMBER",
        invitee.email,
    )

    settings = await _call(client, "GET", f"/api/workspaces/{wid}/settings", invitee)
    assert settings == {
        "workspaceId": wid,
        "workspaceName": name,
        "workspaceDescription": "-",
        "isPublic": True,
        "requiresApproval": True,
        "onlyOwnerCanInvite": True,
    }
    changed = await _call(
        client,
        "PUT",
        f"/api/workspaces/{wid}/settings",
        joiner,
        json={"isPublic": False, "requiresApproval": False, "workspaceDescription": "ours"},
    )
    assert (changed["isPublic"], changed["requiresApproval"], changed["workspaceDescription"]) == (
        False,
        False,
        "ours",
    )
    assert changed["onlyOwnerCanInvite"] is True

    # Profiles: no workspace profile yet, so `me` falls back to the default one.
    header = {"X-Workspace-Id": wid}
    fallback = await _call(client, "GET", "/api/profiles/me", invitee, headers=header)
    assert fallback["workspaceId"] == ZERO
    updated = await _call(
        client,
        "PUT",
        "/api/profiles/me",
        invitee,
        headers=header,
        json={"nickName": " Neo ", "workspaceId": wid, "userId": invitee.user_id},
    )
    assert (updated["workspaceId"], updated["nickName"], updated["email"]) == (wid, "Neo", invitee.email)
    assert (await _call(client, "GET", "/api/profiles/me", invitee, headers=header))["nickName"] == "Neo"
    profiles = await _call(client, "GET", "/api/profiles/all/me", invitee)
    assert [p["workspaceId"] for p in profiles] == [ZERO, wid]
    members = await _call(client, "GET", f"/api/workspaces/{wid}/members", owner)
    assert {m["userId"]: m["nickName"] for m in members}[invitee.user_id] == "Neo"

    gone = await _call(client, "DELETE", f"/api/workspaces/{wid}", owner)
    assert gone == {"message": "Workspace deleted successfully"}
    for person in (owner, joiner, invitee):
        listed = await _call(client, "GET", "/api/workspaces/all", person)
        assert wid not in {w["workspaceId"] for w in listed}
    await _call(client, "GET", f"/api/workspaces/{wid}", owner, status=404)


async def test_roles_are_enforced(client: httpx.AsyncClient) -> None:
    owner, admin, member, outsider = (
        await login(client, "own"),
        await login(client, "adm"),
        await login(client, "mem"),
        await login(client, "out"),
    )
    wid = await _workspace(client, owner)
    for person in (admin, member):
        await _call(
            client,
            "POST",
            f"/api/workspaces/{wid}/members/invite",
            owner,
            status=201,
            json={"email": person.email},
        )
    owner_member = await _member_id(client, wid, owner, owner)
    admin_member = await _member_id(client, wid, owner, admin)
    member_member = await _member_id(client, wid, owner, member)
    await _call(
        client, "PUT", f"/api/workspaces/{wid}/members/{admin_member}/role", owner, json={"roleName": "ADMIN"}
    )

    role = f"/api/workspaces/{wid}/members/{{}}/role"
    denied = await _call(
        client, "PUT", role.format(admin_member), member, status=403, json={"roleName": "MEMBER"}
    )
    assert denied["error"]["code"] == "NOT_A_MANAGER"
    await _call(client, "PUT", role.format(owner_member), admin, status=403, json={"roleName": "MEMBER"})
    await _call(client, "PUT", role.format(owner_member), owner, status=403, json={"roleName": "ADMIN"})
    await _call(client, "PUT", role.format(member_member), owner, status=403, json={"roleName": "OWNER"})
    await _call(client, "DELETE", f"/api/workspaces/{wid}/members/{owner_member}", admin, status=403)
    await _call(client, "DELETE", f"/api/workspaces/{wid}/members/{admin_member}", member, status=403)
    deleted = await _call(client, "DELETE", f"/api/workspaces/{wid}", admin, status=403)
    assert deleted["error"]["code"] == "NOT_THE_OWNER"
    await _call(
        client, "PUT", f"/api/workspaces/{wid}/settings", member, status=403, json={"isPublic": False}
    )

    # A member id of another workspace is not found in this one, even for that workspace's owner.
    other = await _workspace(client, outsider)
    outsider_member = await _member_id(client, other, outsider, outsider)
    await _call(client, "PUT", role.format(outsider_member), owner, status=404, json={"roleName": "ADMIN"})
    await _call(client, "DELETE", f"/api/workspaces/{wid}/members/{outsider_member}", owner, status=404)

    # A non-member sees a public workspace, but not its members or settings.
    await _call(client, "GET", f"/api/workspaces/{wid}", outsider)
    for path in ("members", "settings", "pendingMembers"):
        refused = await _call(client, "GET", f"/api/workspaces/{wid}/{path}", outsider, status=403)
        assert "workspaceId" not in refused
    # A private workspace does not exist for non-members.
    private = await _workspace(client, owner, isPublic=False)
    for path in ("", "/members", "/settings"):
        await _call(client, "GET", f"/api/workspaces/{private}{path}", outsider, status=404)
    await _call(
        client, "POST", "/api/workspaces/join-requests", outsider, status=404, json={"workspaceId": private}
    )

    # The admin cap: four ADMINs at most.
    extra = [await login(client, f"x{i}") for i in range(4)]
    for person in extra:
        await _call(
            client,
            "POST",
            f"/api/workspaces/{wid}/members/invite",
            owner,
            status=201,
            json={"email": person.email},
        )
    for person in extra[:3]:
        target = await _member_id(client, wid, owner, person)
        await _call(client, "PUT", role.format(target), owner, json={"roleName": "ADMIN"})
    capped = await _call(
        client,
        "PUT",
        role.format(await _member_id(client, wid, owner, extra[3])),
        owner,
        status=403,
        json={"roleName": "ADMIN"},
    )
    assert capped["error"]["code"] == "ADMIN_LIMIT"

    # Leaving is allowed, except for the owner; an auto-approved join needs no approval.
    await _call(client, "DELETE", f"/api/workspaces/{wid}/members/{member_member}", member)
    open_ws = await _workspace(client, owner, needApproved=False)
    joined = await _call(
        client, "POST", "/api/workspaces/join-requests", member, status=201, json={"workspaceId": open_ws}
    )
    assert joined["status"] == "APPROVED"
    assert open_ws in {w["workspaceId"] for w in await _call(client, "GET", "/api/workspaces/all", member)}


async def test_bad_input_names_the_field(client: httpx.AsyncClient) -> None:
    person = await login(client, "bad")
    wid = await _workspace(client, person)
    cases: list[tuple[str, str, dict[str, Any], dict[str, str], str]] = [
        ("POST", "/api/workspaces/create", {"workspaceName": "  "}, {}, "workspaceName"),
        ("POST", "/api/workspaces/create", {"workspaceName": "x" * 101}, {}, "workspaceName"),
        (
            "POST",
            "/api/workspaces/create",
            {"workspaceName": "ok", "workspaceDescription": "d" * 1001},
            {},
            "workspaceDescription",
        ),
        ("GET", "/api/workspaces/not-a-uuid/members", {}, {}, "workspaceId"),
        ("PUT", f"/api/workspaces/{wid}/members/nope/role", {"roleName": "ADMIN"}, {}, "memberId"),
        ("PUT", f"/api/workspaces/{wid}/members/{uuid.uuid4()}/role", {"roleName": "KING"}, {}, "roleName"),
        ("POST", f"/api/workspaces/{wid}/members/invite", {"email": "not-an-email"}, {}, "email"),
        ("POST", "/api/workspaces/join-requests", {"workspaceId": "zzz"}, {}, "workspaceId"),
        ("GET", "/api/profiles/me", {}, {"X-Workspace-Id": "garbage"}, "X-Workspace-Id"),
        ("GET", "/api/profiles/me", {}, {}, "X-Workspace-Id"),
        ("PUT", "/api/profiles/me", {"nickName": "n" * 51}, {"X-Workspace-Id": ZERO}, "nickName"),
        ("PUT", f"/api/workspaces/{wid}/joinRequests/{uuid.uuid4()}", {"status": "MAYBE"}, {}, "status"),
        (
            "POST",
            "/api/profiles/me/image/presigned-url",
            {"fileName": "a.exe", "contentType": "application/x", "fileSize": 3},
            {},
            "contentType",
        ),
    ]
    for verb, path, body, headers, field in cases:
        kwargs: dict[str, Any] = {"headers": headers}
        if verb in ("POST", "PUT"):
            kwargs["json"] = body
        error = await _call(client, verb, path, person, status=400, **kwargs)
        assert error["error"]["field"] == field, (path, error)
    # Not found is 404, never 500; names are not unique.
    await _call(client, "GET", f"/api/workspaces/{uuid.uuid4()}", person, status=404)
    await _call(client, "PUT", f"/api/workspaces/{uuid.uuid4()}/settings", person, status=404, json={})
    await _workspace(client, person)


async def test_profile_picture_upload_flow(client: httpx.AsyncClient) -> None:
    person, other = await login(client, "pic"), await login(client, "pic2")
    file = {"fileName": "me.png", "contentType": "image/png", "fileSize": 4}
    upload = await _call(client, "POST", "/api/profiles/me/image/presigned-url", person, json=file)
    assert upload["fileKey"].startswith(f"profiles/{person.user_id}/")
    put = await client.put(upload["uploadUrl"], content=b"\x89PNG", headers={"Content-Type": "image/png"})
    assert put.status_code == 200
    attachment = await _call(
        client,
        "POST",
        "/api/profiles/me/image/attachment",
        person,
        status=201,
        json={**file, "fileKey": upload["fileKey"]},
    )
    assert attachment["status"] == "TEMP"
    await _call(
        client,
        "POST",
        "/api/profiles/me/image/attachment",
        other,
        status=400,
        json={**file, "fileKey": upload["fileKey"]},
    )
    body = {"attachmentId": attachment["attachmentId"]}
    await _call(
        client,
        "PUT",
        "/api/profiles/me/image",
        other,
        status=404,
        headers={"X-Workspace-Id": ZERO},
        json=body,
    )
    profile = await _call(
        client, "PUT", "/api/profiles/me/image", person, headers={"X-Workspace-Id": ZERO}, json=body
    )
    assert profile["profileImageUrl"] == attachment["fileUrl"]
    await _call(
        client,
        "PUT",
        "/api/profiles/me/image",
        person,
        status=409,
        headers={"X-Workspace-Id": ZERO},
        json=body,
    )


def _internal(mesh: Mesh, workload: str) -> internal_pb2_grpc.UserInternalServiceAsyncStub:
    return internal_pb2_grpc.UserInternalServiceStub(mesh.channel("user", as_workload=workload))


async def test_internal_rpcs_answer_listed_workloads_only(client: httpx.AsyncClient, mesh: Mesh) -> None:
    owner, member, stranger = (
        await login(client, "io"),
        await login(client, "im"),
        await login(client, "is"),
    )
    wid = await _workspace(client, owner)
    await _call(
        client,
        "POST",
        f"/api/workspaces/{wid}/members/invite",
        owner,
        status=201,
        json={"email": member.email},
    )
    await _call(
        client, "PUT", "/api/profiles/me", member, headers={"X-Workspace-Id": wid}, json={"nickName": "Mo"}
    )

    board = _internal(mesh, "board")
    one = await board.CheckWorkspaceMembership(
        internal_pb2.CheckWorkspaceMembershipRequest(workspace_id=wid, user_id=owner.user_id)
    )
    assert (one.membership.is_member, one.membership.role, one.membership.is_owner) == (True, "OWNER", True)
    many = await _internal(mesh, "chat").CheckWorkspaceMemberships(
        internal_pb2.CheckWorkspaceMembershipsRequest(
            workspace_id=wid, user_ids=[stranger.user_id, member.user_id]
        )
    )
    assert [(m.user_id, m.is_member, m.role) for m in many.memberships] == [
        (stranger.user_id, False, ""),
        (member.user_id, True, "MEMBER"),
    ]
    users = await _internal(mesh, "ops").GetUsers(
        internal_pb2.GetUsersRequest(user_ids=[owner.user_id, str(uuid.uuid4())])
    )
    assert [u.email for u in users.users] == [owner.email]
    profiles = await _internal(mesh, "noti").GetProfiles(
        internal_pb2.GetProfilesRequest(workspace_id=wid, user_ids=[member.user_id, owner.user_id])
    )
    assert [(p.user_id, p.workspace_id) for p in profiles.profiles] == [
        (member.user_id, wid),
        (owner.user_id, ZERO),
    ]
    single = await _internal(mesh, "storage").GetProfile(
        internal_pb2.GetProfileRequest(workspace_id=wid, user_id=member.user_id)
    )
    assert single.profile.nick_name == "Mo"
    workspace = await board.GetWorkspace(
        internal_pb2.UserInternalServiceGetWorkspaceRequest(workspace_id=wid)
    )
    assert workspace.workspace.owner_id == owner.user_id

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await board.GetWorkspace(
            internal_pb2.UserInternalServiceGetWorkspaceRequest(workspace_id=str(uuid.uuid4()))
        )
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    for workload in ("gateway", "auth"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _internal(mesh, workload).CheckWorkspaceMembership(
                internal_pb2.CheckWorkspaceMembershipRequest(workspace_id=wid, user_id=owner.user_id)
            )
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as ops_refused:
        await _internal(mesh, "ops").GetWorkspace(
            internal_pb2.UserInternalServiceGetWorkspaceRequest(workspace_id=wid)
        )
    assert ops_refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
