"""Comments through the real gateway: oldest first with files, the author's rights, validation."""

from __future__ import annotations

import httpx

from tests.support import BOARD, call, project, team, upload


async def test_comments_list_oldest_first_with_files(client: httpx.AsyncClient) -> None:
    crew = await team(client)
    pid = (await project(client, crew.owner, crew.workspace_id, members=(crew.alice, crew.bob)))["projectId"]
    bid = (
        await call(
            client, "POST", "/api/boards", crew.alice, status=201, json={"projectId": pid, "title": "C"}
        )
    )["boardId"]
    file_id = await upload(client, crew.bob, crew.workspace_id, "COMMENT")
    first = await call(
        client,
        "POST",
        "/api/comments",
        crew.bob,
        status=201,
        json={"boardId": bid, "content": "  first  ", "attachmentIds": [file_id]},
    )
    assert first["content"] == "first"
    assert first["userId"] == crew.bob.user_id
    assert first["boardId"] == bid
    assert [a["id"] for a in first["attachments"]] == [file_id]
    second = await call(
        client, "POST", "/api/comments", crew.alice, status=201, json={"boardId": bid, "content": "2"}
    )
    assert second["attachments"] == []

    for path in (f"/api/comments/board/{bid}", f"/api/comments?boardId={bid}"):
        listed = await call(client, "GET", path, crew.owner)
        assert [c["commentId"] for c in listed] == [first["commentId"], second["commentId"]]
        assert [a["id"] for a in listed[0]["attachments"]] == [file_id]
        assert listed[0]["attachments"][0]["fileUrl"].startswith("http")
    detail = await call(client, "GET", f"/api/boards/{bid}", crew.owner)
    assert [c["commentId"] for c in detail["comments"]] == [first["commentId"], second["commentId"]]
    assert [a["id"] for a in detail["comments"][0]["attachments"]] == [file_id]

    # A comment's file cannot be confirmed a second time, and a failed create leaves no comment.
    again = await client.post(
        f"{BOARD}/api/comments",
        headers=crew.bob.headers,
        json={"boardId": bid, "content": "reuse", "attachmentIds": [file_id]},
    )
    assert again.status_code == 400, again.text
    assert again.json()["error"]["field"] == "attachmentIds"
    assert len(await call(client, "GET", f"/api/comments/board/{bid}", crew.bob)) == 2


async def test_only_the_author_edits_and_author_or_manager_deletes(client: httpx.AsyncClient) -> None:
    crew = await team(client)
    pid = (await project(client, crew.owner, crew.workspace_id, members=(crew.alice, crew.bob)))["projectId"]
    bid = (
        await call(
            client, "POST", "/api/boards", crew.alice, status=201, json={"projectId": pid, "title": "C"}
        )
    )["boardId"]
    comment = await call(
        client, "POST", "/api/comments", crew.alice, status=201, json={"boardId": bid, "content": "a"}
    )
    cid = comment["commentId"]

    edit = await client.put(
        f"{BOARD}/api/comments/{cid}", headers=crew.bob.headers, json={"content": "bob's"}
    )
    assert edit.status_code == 403, edit.text
    extra = await upload(client, crew.alice, crew.workspace_id, "COMMENT")
    edited = await call(
        client,
        "PUT",
        f"/api/comments/{cid}",
        crew.alice,
        json={"content": "better", "attachmentIds": [extra]},
    )
    assert edited["content"] == "better"
    assert [a["id"] for a in edited["attachments"]] == [extra]
    empty = await client.put(
        f"{BOARD}/api/comments/{cid}", headers=crew.alice.headers, json={"content": "  "}
    )
    assert empty.status_code == 400
    assert empty.json()["error"]["field"] == "content"

    # bob is a plain member: not his comment, not his project.
    refused = await client.delete(f"{BOARD}/api/comments/{cid}", headers=crew.bob.headers)
    assert refused.status_code == 403, refused.text
    # The project's owner may.
    await call(client, "DELETE", f"/api/comments/{cid}", crew.owner)
    assert await call(client, "GET", f"/api/comments/board/{bid}", crew.alice) == []
    gone = await client.delete(f"{BOARD}/api/comments/{cid}", headers=crew.alice.headers)
    assert gone.status_code == 404

    own = await call(
        client, "POST", "/api/comments", crew.bob, status=201, json={"boardId": bid, "content": "mine"}
    )
    await call(client, "DELETE", f"/api/comments/{own['commentId']}", crew.bob)
    assert await call(client, "GET", f"/api/comments/board/{bid}", crew.bob) == []


async def test_comment_input_is_validated(client: httpx.AsyncClient) -> None:
    crew = await team(client)
    pid = (await project(client, crew.owner, crew.workspace_id, members=(crew.alice, crew.bob)))["projectId"]
    bid = (
        await call(
            client, "POST", "/api/boards", crew.alice, status=201, json={"projectId": pid, "title": "C"}
        )
    )["boardId"]
    for body, field in (
        ({"boardId": bid, "content": ""}, "content"),
        ({"boardId": bid, "content": "x" * 10001}, "content"),
        ({"boardId": "nope", "content": "x"}, "boardId"),
        ({"content": "x"}, "boardId"),
    ):
        reply = await client.post(f"{BOARD}/api/comments", headers=crew.alice.headers, json=body)
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["field"] == field
    assert (await client.get(f"{BOARD}/api/comments", headers=crew.alice.headers)).status_code == 400
    longest = await call(
        client, "POST", "/api/comments", crew.alice, status=201, json={"boardId": bid, "content": "x" * 10000}
    )
    assert len(longest["content"]) == 10000
