"""The web client's board journey through the real gateway, S3 server and WebSocket, end to end.

project create → init-settings → board create → move → edit → comment → attachment upload to S3 and
download → delete; and a member removed from the workspace loses the project at once.
"""

from __future__ import annotations

import httpx

from tests.support import BOARD, PNG, USER, call, project, team, upload


async def test_the_web_clients_board_journey(client: httpx.AsyncClient) -> None:
    crew = await team(client)
    owner, alice = crew.owner, crew.alice
    created = await project(client, owner, crew.workspace_id, "Launch", members=(crew.alice, crew.bob))
    pid = created["projectId"]
    listed = await call(client, "GET", f"/api/projects/workspace/{crew.workspace_id}", alice)
    assert listed[0]["projectId"] == pid

    settings = await call(client, "GET", f"/api/projects/{pid}/init-settings", alice)
    fields = {field["fieldId"]: field for field in settings["fields"]}
    assert set(fields) == {"stage", "importance", "role"}
    columns = [option["optionValue"] for option in fields["stage"]["options"]]
    assert columns == ["pending", "in_progress", "review", "approved", "deleted"]

    # A card with a file, assigned to alice, with bob taking part.
    file_id = await upload(client, alice, crew.workspace_id, "BOARD")
    board = await call(
        client,
        "POST",
        "/api/boards",
        alice,
        status=201,
        json={
            "projectId": pid,
            "title": "Write the launch post",
            "content": "Draft first",
            "customFields": {"stage": "pending", "importance": "high", "role": "planner"},
            "participants": [crew.bob.user_id],
            "startDate": "2026-12-01T00:00:00Z",
            "dueDate": "2026-12-10T00:00:00Z",
            "attachmentIds": [file_id],
        },
    )
    bid = board["boardId"]
    assert board["customFields"] == {"stage": "pending", "importance": "high", "role": "planner"}
    assert board["assigneeId"] == alice.user_id
    assert board["participantIds"] == [crew.bob.user_id]
    assert [a["id"] for a in board["attachments"]] == [file_id]

    # Drag to "in progress", then edit; every response speaks option values.
    moved = await call(
        client,
        "PUT",
        f"/api/boards/{bid}/move",
        owner,
        json={"projectId": pid, "groupByFieldName": "stage", "newFieldValue": "in_progress"},
    )
    assert moved["newFieldValue"] == "in_progress"
    retitled = {"title": "Publish the launch post", "projectId": pid}
    edited = await call(client, "PUT", f"/api/boards/{bid}", owner, json=retitled)
    assert edited["title"] == "Publish the launch post"
    assert edited["customFields"]["stage"] == "in_progress"
    kanban = await call(client, "GET", f"/api/boards/project/{pid}", crew.bob)
    assert [(b["boardId"], b["customFields"]["stage"]) for b in kanban] == [(bid, "in_progress")]

    comment = await call(
        client, "POST", "/api/comments", crew.bob, status=201, json={"boardId": bid, "content": "Looks good"}
    )
    comments = await call(client, "GET", f"/api/comments/board/{bid}", alice)
    assert [c["commentId"] for c in comments] == [comment["commentId"]]

    # The card opens with its file; its download URL serves the uploaded bytes from S3.
    detail = await call(client, "GET", f"/api/boards/{bid}", crew.bob)
    assert [p["userId"] for p in detail["participants"]] == [crew.bob.user_id]
    assert [c["content"] for c in detail["comments"]] == ["Looks good"]
    (inline,) = detail["attachments"]
    # The web client reads attachmentId and participantId in some screens, id in others.
    assert inline["attachmentId"] == inline["id"] == file_id
    assert all(p["participantId"] == p["id"] for p in detail["participants"])
    download = await call(client, "GET", f"/api/attachments/{file_id}/download", crew.bob)
    async with httpx.AsyncClient(timeout=15) as s3:
        assert (await s3.get(inline["fileUrl"])).content == PNG
        assert (await s3.get(download["downloadUrl"])).content == PNG

    # Deleting the card deletes its file from S3 too.
    await call(client, "DELETE", f"/api/boards/{bid}", alice)
    await call(client, "GET", f"/api/boards/{bid}", alice, status=404)
    assert await call(client, "GET", f"/api/boards/project/{pid}", alice) == []
    async with httpx.AsyncClient(timeout=15) as s3:
        assert (await s3.get(download["downloadUrl"])).status_code == 404


async def test_a_member_removed_from_the_workspace_loses_the_project_at_once(
    client: httpx.AsyncClient,
) -> None:
    crew = await team(client)
    pid = (await project(client, crew.owner, crew.workspace_id, members=(crew.alice, crew.bob)))["projectId"]
    # Alice reads the project (her membership is now cached by board), then is removed from the workspace.
    await call(client, "GET", f"/api/projects/{pid}", crew.alice)
    members = (
        await client.get(f"{USER}/api/workspaces/{crew.workspace_id}/members", headers=crew.owner.headers)
    ).json()
    (alice_row,) = [m for m in members if m["userId"] == crew.alice.user_id]
    removed = await client.delete(
        f"{USER}/api/workspaces/{crew.workspace_id}/members/{alice_row['workspaceMemberId']}",
        headers=crew.owner.headers,
    )
    assert removed.status_code == 200, removed.text
    await call(client, "GET", f"/api/projects/{pid}", crew.alice, status=404)
    await call(client, "GET", f"/api/boards/project/{pid}", crew.alice, status=404)
    reply = await client.get(f"{BOARD}/api/projects/{pid}", headers=crew.owner.headers)
    assert reply.status_code == 200
