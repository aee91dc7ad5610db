"""Account security (issue 12) through the real entry points: the gateway over HTTP, the services over mTLS.

- Nobody can claim an e-mail address before its owner logs in: the e-mail of an account cannot be typed
  in (``PUT /api/users/{id}``), and a login or an invitation reaches an account only by the provider's
  subject or by an e-mail the account verified, so the real owner lands in an account of their own.
- A logout ends the whole login session, whatever the body holds: the web client sends only its Bearer
  access token, and its refresh token (and every rotation of it) must stop working with it.
- There is one way to close an account: ``PUT /api/users/{self} {"isActive": false}`` locks it out as
  ``DELETE /api/users/me`` does.
- Another user's e-mail is for those who share a workspace with them, and a public workspace's owner id
  for its members.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import grpc
import httpx
import pytest
from wealist.board.v1 import project_pb2, project_pb2_grpc
from wealist.user.v1 import internal_pb2, internal_pb2_grpc, user_pb2, user_pb2_grpc

from tests.support import (
    AUTH,
    BOARD,
    USER,
    Mesh,
    Person,
    authorization,
    bearer,
    error_reason,
    issue_tokens,
    login,
    project,
    refresh,
    workspace,
)

pytestmark = pytest.mark.asyncio


def _code(reply: httpx.Response) -> Any:
    return reply.json()["error"]["code"]


# --- logout ends the session ----------------------------------------------------------------------------


async def test_logout_with_only_the_bearer_token_ends_the_whole_session(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    owner = await login(client, "logout")
    workspace_id = await workspace(client, owner)
    project_id = (await project(client, owner, workspace_id))["projectId"]
    first = await issue_tokens(client, owner.email)
    rotated = await refresh(client, first["refreshToken"])
    assert rotated.status_code == 200, rotated.text
    session = rotated.json()
    other_device = await issue_tokens(client, owner.email)

    # Exactly what the web client sends: the access token, no body.
    out = await client.post(f"{AUTH}/api/auth/logout", headers=authorization(session["accessToken"]))
    assert out.status_code == 200, out.text

    # The refresh token of the session no longer refreshes ...
    refused = await refresh(client, session["refreshToken"])
    assert refused.status_code == 401, refused.text
    assert _code(refused) == "SESSION_ENDED"
    # ... and the session's earlier access token, never presented to logout, is refused at the edge ...
    earlier = Person(owner.user_id, owner.email, first["accessToken"])
    for path in (f"{USER}/api/users/me", f"{BOARD}/api/projects/{project_id}"):
        reply = await client.get(path, headers=earlier.headers)
        assert reply.status_code == 401, f"{path}: {reply.text}"
        assert _code(reply) == "SESSION_ENDED"
    # ... and by the services themselves, behind the gateway.
    with pytest.raises(grpc.aio.AioRpcError) as by_board:
        await project_pb2_grpc.ProjectServiceStub(mesh.channel("board")).GetProject(
            project_pb2.GetProjectRequest(project_id=project_id), metadata=bearer(first["accessToken"])
        )
    assert by_board.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(by_board.value) == "SESSION_ENDED"
    with pytest.raises(grpc.aio.AioRpcError) as by_user:
        await user_pb2_grpc.UserServiceStub(mesh.channel("user")).GetMyUser(
            user_pb2.GetMyUserRequest(), metadata=bearer(session["accessToken"])
        )
    assert by_user.value.code() is grpc.StatusCode.UNAUTHENTICATED

    # Another login of the same account is another session: untouched.
    me = await client.get(f"{USER}/api/users/me", headers=authorization(other_device["accessToken"]))
    assert me.status_code == 200, me.text
    renewed = await refresh(client, other_device["refreshToken"])
    assert renewed.status_code == 200, renewed.text


# --- nobody claims someone else's e-mail ----------------------------------------------------------------


def _address(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@corp.example"


async def test_an_email_cannot_be_typed_in_so_its_real_owner_gets_an_account_of_their_own(
    client: httpx.AsyncClient,
) -> None:
    attacker, owner = await login(client, "squatter"), await login(client, "hiring")
    workspace_id = await workspace(client, owner)
    newhire = _address("newhire")

    claimed = await client.put(
        f"{USER}/api/users/{attacker.user_id}", headers=attacker.headers, json={"email": newhire}
    )
    assert claimed.status_code == 400, claimed.text
    assert claimed.json()["error"]["field"] == "email"
    assert _code(claimed) == "EMAIL_NOT_CHANGEABLE"
    me = await client.get(f"{USER}/api/users/me", headers=attacker.headers)
    assert (me.json()["email"], me.json()["emailVerified"]) == (attacker.email, True)
    # Sending the address the account has is no change, and is accepted.
    same = await client.put(
        f"{USER}/api/users/{attacker.user_id}",
        headers=attacker.headers,
        json={"email": attacker.email.upper()},
    )
    assert same.status_code == 200, same.text

    # An invitation by the address reaches nobody before its owner logs in ...
    early = await client.post(
        f"{USER}/api/workspaces/{workspace_id}/members/invite", headers=owner.headers, json={"email": newhire}
    )
    assert early.status_code == 404, early.text
    # ... who then gets an account of their own, which the invitation reaches.
    first_login = await issue_tokens(client, newhire)
    assert first_login["userId"] != attacker.user_id
    invited = await client.post(
        f"{USER}/api/workspaces/{workspace_id}/members/invite", headers=owner.headers, json={"email": newhire}
    )
    assert invited.status_code == 201, invited.text
    assert invited.json()["userId"] == first_login["userId"]


async def test_a_login_links_only_by_the_providers_subject_or_a_verified_email(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    """FindOrCreateOAuthUser as auth calls it over mTLS: the user service's linking rule."""
    users = internal_pb2_grpc.UserInternalServiceStub(mesh.channel("user", as_workload="auth"))

    async def google(subject: str, email: str) -> internal_pb2.FindOrCreateOAuthUserResponse:
        reply: internal_pb2.FindOrCreateOAuthUserResponse = await users.FindOrCreateOAuthUser(
            internal_pb2.FindOrCreateOAuthUserRequest(
                email=email, name="Google User", provider="google", provider_subject=subject
            )
        )
        return reply

    first_subject, address = str(secrets.randbelow(10**20)), _address("linked")
    created = await google(first_subject, address)
    assert created.created
    # The same Google identity lands in its account even after its address changed at Google.
    moved = await google(first_subject, _address("renamed"))
    assert (moved.user_id, moved.created, moved.email) == (created.user_id, False, address)
    # Another Google identity presenting the address never enters that account.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await google(str(secrets.randbelow(10**20)), address)
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(refused.value) == "ACCOUNT_LINKED_ELSEWHERE"

    # An account the test login made (its address verified by that login) is linked on first Google login.
    tester = await login(client, "tester")
    linked_subject = str(secrets.randbelow(10**20))
    linked = await google(linked_subject, tester.email)
    assert (linked.user_id, linked.created) == (tester.user_id, False)
    me = await user_pb2_grpc.UserServiceStub(mesh.channel("user")).GetMyUser(
        user_pb2.GetMyUserRequest(), metadata=bearer(tester.token)
    )
    assert me.user.google_id == linked_subject
    with pytest.raises(grpc.aio.AioRpcError) as second:
        await google(str(secrets.randbelow(10**20)), tester.email)
    assert error_reason(second.value) == "ACCOUNT_LINKED_ELSEWHERE"
    # A Google login without a subject is refused, naming the field.
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await google("", _address("nosub"))
    assert anonymous.value.code() is grpc.StatusCode.INVALID_ARGUMENT


# --- one way to close an account --------------------------------------------------------------------------


async def test_closing_by_is_active_false_locks_the_account_out_like_delete(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    person = await login(client, "inactive")
    workspace_id = await workspace(client, person)
    project_id = (await project(client, person, workspace_id))["projectId"]
    second = await issue_tokens(client, person.email)

    closed = await client.put(
        f"{USER}/api/users/{person.user_id}", headers=person.headers, json={"isActive": False}
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["isActive"] is False

    # Its tokens no longer read or write, at the edge and behind it, and refresh is refused.
    for verb, path in (
        ("GET", f"{USER}/api/users/me"),
        ("GET", f"{BOARD}/api/projects/{project_id}"),
        ("POST", f"{USER}/api/workspaces/create"),
    ):
        reply = await client.request(verb, path, headers=person.headers, json={"workspaceName": "after"})
        assert reply.status_code == 401, f"{path}: {reply.text}"
        assert _code(reply) == "ACCOUNT_CLOSED"
    with pytest.raises(grpc.aio.AioRpcError) as by_board:
        await project_pb2_grpc.ProjectServiceStub(mesh.channel("board")).GetProject(
            project_pb2.GetProjectRequest(project_id=project_id), metadata=bearer(person.token)
        )
    assert error_reason(by_board.value) == "ACCOUNT_CLOSED"
    refused = await refresh(client, second["refreshToken"])
    assert refused.status_code == 401, refused.text
    assert _code(refused) == "ACCOUNT_CLOSED"

    # The one way back is RestoreUser, with the account's own token, as after DELETE /api/users/me.
    restored = await client.put(f"{USER}/api/users/{person.user_id}/restore", headers=person.headers)
    assert restored.status_code == 200, restored.text
    me = await client.get(f"{USER}/api/users/me", headers=person.headers)
    assert me.status_code == 200, me.text


# --- e-mails and owner ids are for colleagues ----------------------------------------------------------


async def test_another_users_email_is_shown_only_to_those_who_share_a_workspace(
    client: httpx.AsyncClient,
) -> None:
    owner, colleague, stranger = (
        await login(client, "owner"),
        await login(client, "colleague"),
        await login(client, "stranger"),
    )
    name = f"Open {uuid.uuid4().hex[:8]}"
    created = await client.post(
        f"{USER}/api/workspaces/create",
        headers=owner.headers,
        json={"workspaceName": name, "isPublic": True, "needApproved": False},
    )
    assert created.status_code == 201, created.text
    workspace_id = created.json()["workspaceId"]
    joined = await client.post(
        f"{USER}/api/workspaces/join-requests", headers=colleague.headers, json={"workspaceId": workspace_id}
    )
    assert joined.status_code == 201, joined.text

    # A stranger finds the public workspace, but not who owns it ...
    found = await client.get(f"{USER}/api/workspaces/public/{name}", headers=stranger.headers)
    assert [(w["workspaceId"], w["ownerId"]) for w in found.json()] == [(workspace_id, "")]
    outside = await client.get(f"{USER}/api/workspaces/{workspace_id}", headers=stranger.headers)
    assert outside.json()["ownerId"] == ""
    # ... and, given a user id, not their e-mail.
    seen = await client.get(f"{USER}/api/users/{owner.user_id}", headers=stranger.headers)
    assert seen.status_code == 200, seen.text
    assert (seen.json()["userId"], seen.json()["email"]) == (owner.user_id, "")
    assert "googleId" not in seen.json()

    # Members see both; everybody sees their own e-mail.
    inside = await client.get(f"{USER}/api/workspaces/public/{name}", headers=colleague.headers)
    assert [w["ownerId"] for w in inside.json()] == [owner.user_id]
    for viewer, target in ((colleague, owner), (owner, colleague), (stranger, stranger)):
        reply = await client.get(f"{USER}/api/users/{target.user_id}", headers=viewer.headers)
        assert reply.json()["email"] == target.email, (viewer.email, target.email)


async def test_a_closed_google_account_is_not_restored_over_the_account_its_google_login_made_since(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    users = internal_pb2_grpc.UserInternalServiceStub(mesh.channel("user", as_workload="auth"))
    subject = str(secrets.randbelow(10**20))

    async def google(email: str) -> str:
        reply = await users.FindOrCreateOAuthUser(
            internal_pb2.FindOrCreateOAuthUserRequest(
                email=email, name="G", provider="google", provider_subject=subject
            )
        )
        return str(reply.user_id)

    first = await google(_address("before"))
    tokens = await issue_tokens(client, user_id=first)
    headers = authorization(tokens["accessToken"])
    closed = await client.delete(f"{USER}/api/users/me", headers=headers)
    assert closed.status_code == 200, closed.text
    # The same Google account logs in again (with a new address at Google): a new account.
    second = await google(_address("after"))
    assert second != first

    restored = await client.put(f"{USER}/api/users/{first}/restore", headers=headers)
    assert restored.status_code == 409, restored.text
