"""Comments on boards: list, create, update one's own, delete; no protobuf.

Any member of the board's workspace reads them. Those who may change the board (project members, its
author and assignee) and its participants comment (:mod:`access`); only the author edits a comment; the
author or the project's OWNER/ADMIN deletes it, and its files go with it (the servicer purges them from
S3 after the commit).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete as sql_delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh import Forbidden, InvalidField, ObjectStore
from services.board.access import Seen, require_commenter
from services.board.attachments import service as attachments
from services.board.boards.service import participants_of
from services.board.models import ENTITY_COMMENT, Board, Comment

MAX_CONTENT = 10000
PREVIEW = 100
ELLIPSIS = "..."


def clean_content(raw: str) -> str:
    """A comment's content: trimmed, 1-10000 characters."""
    content = raw.strip()
    if not content:
        raise InvalidField("content", "must not be empty")
    if len(content) > MAX_CONTENT:
        raise InvalidField("content", f"must be at most {MAX_CONTENT} characters")
    return content


def preview(content: str) -> str:
    """The start of a comment for a notification: at most 100 characters, "..." marking a cut."""
    if len(content) <= PREVIEW:
        return content
    return content[: PREVIEW - len(ELLIPSIS)] + ELLIPSIS


async def list_comments(
    session: AsyncSession, *, board: Board
) -> tuple[list[Comment], dict[uuid.UUID, list[attachments.InlineFile]]]:
    """A board's comments, oldest first, and the files of each (every comment is a key)."""
    statement = (
        select(Comment)
        .where(col(Comment.board_id) == board.id)
        .order_by(col(Comment.created_at), col(Comment.id))
    )
    rows = list((await session.exec(statement)).all())
    files = await attachments.inline_files(
        session, entity_type=ENTITY_COMMENT, entity_ids=[row.id for row in rows]
    )
    return rows, files


async def create_comment(
    session: AsyncSession,
    *,
    board: Board,
    seen: Seen,
    user_id: uuid.UUID,
    content: str,
    attachment_ids: Sequence[uuid.UUID],
    store: ObjectStore,
) -> tuple[Comment, list[uuid.UUID]]:
    """Comment on a board the user may comment on, confirming its files; the board's participants too."""
    people = (await participants_of(session, board_ids=[board.id]))[board.id]
    require_commenter(seen, board, user_id, people)
    comment = Comment(board_id=board.id, user_id=user_id, content=content)
    session.add(comment)
    await session.flush()
    await attachments.confirm(
        session,
        ids=attachment_ids,
        entity_type=ENTITY_COMMENT,
        entity_id=comment.id,
        project=seen.project,
        user_id=user_id,
        store=store,
    )
    return comment, people


async def update_comment(
    session: AsyncSession,
    *,
    comment: Comment,
    seen: Seen,
    user_id: uuid.UUID,
    content: str,
    attachment_ids: Sequence[uuid.UUID],
    store: ObjectStore,
) -> None:
    """Change one's own comment (locked by the caller); listed files are added to it."""
    if comment.user_id != user_id:
        raise Forbidden("Only the author can edit this comment")
    comment.content = content
    comment.updated_at = datetime.now(UTC)
    session.add(comment)
    await session.flush()
    await attachments.confirm(
        session,
        ids=attachment_ids,
        entity_type=ENTITY_COMMENT,
        entity_id=comment.id,
        project=seen.project,
        user_id=user_id,
        store=store,
    )


async def delete_comment(
    session: AsyncSession, *, comment: Comment, seen: Seen, user_id: uuid.UUID
) -> list[uuid.UUID]:
    """Delete a comment (locked by the caller): its author or the project's OWNER/ADMIN; its files' ids."""
    if comment.user_id != user_id and not seen.manages:
        raise Forbidden("Only the author or a project owner or admin can delete this comment")
    # Files are handed to the clean-up first, so a failed purge after the commit still gets them removed.
    released = await attachments.release(session, comment_ids=[comment.id])
    await session.exec(sql_delete(Comment).where(col(Comment.id) == comment.id))
    return released
