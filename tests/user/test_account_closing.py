"""A deleted account is locked out of the whole platform at once, and its own token can only restore it.

Before, a soft-deleted user's access token kept working everywhere until it expired (30 minutes), and a
refresh token kept issuing new ones for a week. Now user marks the account in Redis when it is deleted;
every verifier (the gateway at the edge, each service again) reads that mark in the same round trip as
the blacklist, only RestoreUser (``closed_account_allowed`` in proto) still accepts the token, and auth
refuses to refresh it.
"""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest
from wealist.board.v1 import project_pb2, project_pb2_grpc

from tests.support import (
    BOARD,
    NOTI,
    USER,
    Mesh,
    Person,
    bearer,
    issue_tokens,
    login,
    project,
    refresh,
    workspace,
)

pytestmark = pytest.mark.asyncio


def _error_code(reply: httpx.Response) -> Any:
    return reply.json()["error"]["code"]


async def _locked_out(client: httpx.AsyncClient, who: Person, project_id: str) -> None:
    """Every door refuses ``who``: user, board, noti over REST and SSE, with ACCOUNT_CLOSED."""
    replies = [
        await client.get(f"{USER}/api/users/me", headers=who.headers),
        await client.get(f"{USER}/api/workspaces/all", headers=who.headers),
        await client.get(f"{BOARD}/api/projects/{project_id}", headers=who.headers),
        await client.get(f"{NOTI}/api/notifications/unread-count", headers=who.headers),
        await client.get(f"{NOTI}/api/notifications/stream", params={"token": who.token}),
    ]
    assert [reply.status_code for reply in replies] == [401] * len(replies), [r.text for r in replies]
    assert {_error_code(reply) for reply in replies} == {"ACCOUNT_CLOSED"}


async def test_a_deleted_account_is_locked_out_everywhere_until_it_is_restored(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    alice, colleague = await login(client, "closing"), await login(client, "colleague")
    workspace_id = await workspace(client, alice, colleague)
    created = await project(client, alice, workspace_id)
    project_id = created["projectId"]

    deleted = await client.delete(f"{USER}/api/users/me", headers=alice.headers)
    assert deleted.status_code == 200, deleted.text

    await _locked_out(client, alice, project_id)
    # The services check again behind the gateway: the same token sent straight to board is refused.
    board = project_pb2_grpc.ProjectServiceStub(mesh.channel("board"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await board.GetProject(
            project_pb2.GetProjectRequest(project_id=project_id),
            metadata=bearer(alice.token),
            timeout=5,
        )
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    # Nobody else is touched: a colleague still reads the project.
    still = await client.get(f"{BOARD}/api/projects/{project_id}", headers=colleague.headers)
    assert still.status_code == 200, still.text

    # Someone else cannot restore the account, and nor can its token restore another.
    foreign = await client.put(f"{USER}/api/users/{alice.user_id}/restore", headers=colleague.headers)
    assert foreign.status_code == 403, foreign.text
    sideways = await client.put(f"{USER}/api/users/{colleague.user_id}/restore", headers=alice.headers)
    assert sideways.status_code == 403, sideways.text

    restored = await client.put(f"{USER}/api/users/{alice.user_id}/restore", headers=alice.headers)
    assert restored.status_code == 200, restored.text
    assert restored.json()["userId"] == alice.user_id
    for path in (f"{USER}/api/users/me", f"{BOARD}/api/projects/{project_id}"):
        reply = await client.get(path, headers=alice.headers)
        assert reply.status_code == 200, f"{path}: {reply.text}"


async def test_a_deleted_account_gets_no_new_tokens_until_it_is_restored(client: httpx.AsyncClient) -> None:
    person = await login(client, "refresher")
    # A second test login with the same e-mail: the same account, and a refresh token this time.
    body = await issue_tokens(client, person.email)
    assert body["userId"] == person.user_id
    refresh_token = body["refreshToken"]
    deleted = await client.delete(f"{USER}/api/users/me", headers=person.headers)
    assert deleted.status_code == 200, deleted.text

    # A failed refresh is what makes the web client log out (contract: web-client.md).
    refused = await refresh(client, refresh_token)
    assert refused.status_code == 401, refused.text
    assert _error_code(refused) == "ACCOUNT_CLOSED"

    restored = await client.put(f"{USER}/api/users/{person.user_id}/restore", headers=person.headers)
    assert restored.status_code == 200, restored.text
    # The refused refresh did not use the token up: it works again once the account is back.
    renewed = await refresh(client, refresh_token)
    assert renewed.status_code == 200, renewed.text
    fresh = Person(person.user_id, person.email, renewed.json()["accessToken"])
    me = await client.get(f"{USER}/api/users/me", headers=fresh.headers)
    assert me.status_code == 200, me.text


async def test_restoring_an_active_account_changes_nothing(client: httpx.AsyncClient) -> None:
    person = await login(client, "active")
    restored = await client.put(f"{USER}/api/users/{person.user_id}/restore", headers=person.headers)
    assert restored.status_code == 200, restored.text
    me = await client.get(f"{USER}/api/users/me", headers=person.headers)
    assert me.status_code == 200, me.text
