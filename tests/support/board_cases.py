"""One request per board route naming another tenant's ids: what the tenancy and bad-input tests send.

Both tests walk the same table, so it lives here rather than in either (a test module imports no other
test module). A new board route without a case here fails test_every_board_route_has_an_intruder_case
(tests/board/test_tenancy.py).
"""

from __future__ import annotations

from typing import Any

# (verb, path template as in proto) → (path with {placeholders} of the victim's ids, JSON body or None).
# The bodies are valid apart from whose ids they name, so the refusal comes from the tenancy check.
CASES: dict[tuple[str, str], tuple[str, dict[str, Any] | None]] = {
    ("GET", "/api/projects"): ("/api/projects?workspaceId={workspace}", None),
    ("POST", "/api/projects"): ("/api/projects", {"workspaceId": "{workspace}", "name": "Intrusion"}),
    ("GET", "/api/projects/workspace/{workspace_id}"): ("/api/projects/workspace/{workspace}", None),
    ("GET", "/api/projects/workspace/{workspace_id}/default"): (
        "/api/projects/workspace/{workspace}/default",
        None,
    ),
    ("GET", "/api/projects/search"): ("/api/projects/search?workspaceId={workspace}&query=Vic", None),
    ("GET", "/api/projects/{project_id}"): ("/api/projects/{project}", None),
    ("PUT", "/api/projects/{project_id}"): ("/api/projects/{project}", {"name": "Taken over"}),
    ("DELETE", "/api/projects/{project_id}"): ("/api/projects/{project}", None),
    ("GET", "/api/projects/{project_id}/init-settings"): ("/api/projects/{project}/init-settings", None),
    ("GET", "/api/projects/{project_id}/members"): ("/api/projects/{project}/members", None),
    ("DELETE", "/api/projects/{project_id}/members/{member_id}"): (
        "/api/projects/{project}/members/{member}",
        None,
    ),
    ("PUT", "/api/projects/{project_id}/members/{member_id}/role"): (
        "/api/projects/{project}/members/{member}/role",
        {"roleName": "ADMIN"},
    ),
    ("GET", "/api/projects/{project_id}/join-requests"): ("/api/projects/{project}/join-requests", None),
    ("POST", "/api/join-requests"): ("/api/join-requests", {"projectId": "{project}"}),
    ("PUT", "/api/join-requests/{join_request_id}"): ("/api/join-requests/{request}", {"status": "APPROVED"}),
    ("GET", "/api/boards/project/{project_id}"): ("/api/boards/project/{project}", None),
    ("GET", "/api/boards"): ("/api/boards?projectId={project}", None),
    ("POST", "/api/boards"): ("/api/boards", {"projectId": "{project}", "title": "Planted"}),
    ("GET", "/api/boards/{board_id}"): ("/api/boards/{board}", None),
    ("PUT", "/api/boards/{board_id}"): ("/api/boards/{board}", {"title": "Defaced"}),
    ("DELETE", "/api/boards/{board_id}"): ("/api/boards/{board}", None),
    ("PUT", "/api/boards/{board_id}/move"): (
        "/api/boards/{board}/move",
        {"projectId": "{project}", "groupByFieldName": "stage", "newFieldValue": "deleted"},
    ),
    ("POST", "/api/participants"): ("/api/participants", {"boardId": "{board}", "userIds": ["{intruder}"]}),
    ("GET", "/api/participants/board/{board_id}"): ("/api/participants/board/{board}", None),
    ("DELETE", "/api/participants/board/{board_id}/user/{user_id}"): (
        "/api/participants/board/{board}/user/{member}",
        None,
    ),
    ("GET", "/api/comments/board/{board_id}"): ("/api/comments/board/{board}", None),
    ("GET", "/api/comments"): ("/api/comments?boardId={board}", None),
    ("POST", "/api/comments"): ("/api/comments", {"boardId": "{board}", "content": "spam"}),
    ("PUT", "/api/comments/{comment_id}"): ("/api/comments/{comment}", {"content": "edited by a stranger"}),
    ("DELETE", "/api/comments/{comment_id}"): ("/api/comments/{comment}", None),
    ("GET", "/api/field-options"): ("/api/field-options?projectId={project}&fieldType=stage", None),
    ("POST", "/api/field-options"): (
        "/api/field-options",
        {"projectId": "{project}", "fieldType": "stage", "value": "hacked", "label": "x", "color": "#fff"},
    ),
    ("PATCH", "/api/field-options/{option_id}"): ("/api/field-options/{option}", {"label": "Renamed"}),
    ("DELETE", "/api/field-options/{option_id}"): ("/api/field-options/{option}", None),
    ("PUT", "/api/field-options/reorder"): (
        "/api/field-options/reorder",
        {"projectId": "{project}", "fieldType": "stage", "optionIds": ["{option}"]},
    ),
    ("POST", "/api/attachments/presigned-url"): (
        "/api/attachments/presigned-url",
        {
            "workspaceId": "{workspace}",
            "fileName": "a.png",
            "fileSize": 10,
            "contentType": "image/png",
            "entityType": "BOARD",
        },
    ),
    ("POST", "/api/attachments"): (
        "/api/attachments",
        {
            "entityType": "BOARD",
            "fileKey": "{file_key}",
            "fileName": "a.png",
            "fileSize": 10,
            "contentType": "image/png",
        },
    ),
    ("GET", "/api/attachments/{attachment_id}/download"): ("/api/attachments/{attachment}/download", None),
    ("DELETE", "/api/attachments/{attachment_id}"): ("/api/attachments/{attachment}", None),
    ("GET", "/api/projects/{project_id}/attachments"): ("/api/projects/{project}/attachments", None),
    ("GET", "/api/boards/{board_id}/attachments"): ("/api/boards/{board}/attachments", None),
    ("GET", "/api/comments/{comment_id}/attachments"): ("/api/comments/{comment}/attachments", None),
    ("GET", "/api/projects/{project_id}/online-users"): ("/api/projects/{project}/online-users", None),
}
