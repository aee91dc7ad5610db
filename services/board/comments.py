"""Comments on boards: list, create (telling the board's people), update one's own, delete.

Any member of the board's workspace reads them. Those who may change the board (project members, its
author and assignee) and its participants comment (:mod:`access`); only the author edits a comment; the
author or the project's OWNER/ADMIN deletes it, and its files go with it (purged from S3 after the
commit).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete as sql_delete
from sqlmodel import col, select
from wealist.board.v1 import board_pb2, board_pb2_grpc

from mesh import Context, Forbidden, InvalidField, caller_id, parse_uuid
from services.board.access import require_commenter, see_board, see_comment
from services.board.attachments import service as attachments
from services.board.attachments import servicer as attachment_api
from services.board.boards.service import attachment_ids, participants_of
from services.board.boards.servicer import comment_message
from services.board.context import BoardContext
from services.board.models import ENTITY_COMMENT, Comment
from services.board.notify import BOARD_COMMENT_ADDED, Notifier

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


class CommentServicer(board_pb2_grpc.CommentServiceServicer):
    """Comments on the boards of the caller's workspaces."""

    def __init__(self, ctx: BoardContext, notifier: Notifier) -> None:
        self.ctx = ctx
        self.notifier = notifier

    async def ListComments(
        self, request: board_pb2.ListCommentsRequest, context: Context
    ) -> board_pb2.ListCommentsResponse:
        """A board's comments, oldest first, with their files."""
        user = caller_id()
        if not request.board_id.strip():
            raise InvalidField("boardId", "Board ID is required")
        board_id = parse_uuid(request.board_id, field="boardId")
        async with self.ctx.database.unit_of_work() as session:
            board, _ = await see_board(session, self.ctx.directory, board_id, user)
            statement = (
                select(Comment)
                .where(col(Comment.board_id) == board.id)
                .order_by(col(Comment.created_at), col(Comment.id))
            )
            rows = list((await session.exec(statement)).all())
            files = await attachment_api.inline(
                session, self.ctx.store, ENTITY_COMMENT, [row.id for row in rows]
            )
        return board_pb2.ListCommentsResponse(comments=[comment_message(row, files[row.id]) for row in rows])

    async def CreateComment(
        self, request: board_pb2.CreateCommentRequest, context: Context
    ) -> board_pb2.CreateCommentResponse:
        """Comment on a board, confirming its files in the same transaction; the board's people are told."""
        user = caller_id()
        if not request.board_id.strip():
            raise InvalidField("boardId", "Board ID is required")
        board_id = parse_uuid(request.board_id, field="boardId")
        content = clean_content(request.content)
        files = attachment_ids(request.attachment_ids)
        async with self.ctx.database.unit_of_work() as session:
            board, seen = await see_board(session, self.ctx.directory, board_id, user)
            people = (await participants_of(session, [board.id]))[board.id]
            require_commenter(seen, board, user, people)
            comment = Comment(board_id=board.id, user_id=user, content=content)
            session.add(comment)
            await session.flush()
            await attachments.confirm(
                session,
                ids=files,
                entity_type=ENTITY_COMMENT,
                entity_id=comment.id,
                project=seen.project,
                user_id=user,
                store=self.ctx.store,
            )
            self.notifier.enqueue(
                session,
                event_type=BOARD_COMMENT_ADDED,
                actor_id=user,
                targets=[board.assignee_id, *people],
                board=board,
                project=seen.project,
                metadata={"commentId": str(comment.id), "commentPreview": preview(content)},
            )
            inlined = await attachment_api.inline(session, self.ctx.store, ENTITY_COMMENT, [comment.id])
            message = comment_message(comment, inlined[comment.id])
        self.notifier.poke()
        return board_pb2.CreateCommentResponse(comment=message)

    async def UpdateComment(
        self, request: board_pb2.UpdateCommentRequest, context: Context
    ) -> board_pb2.UpdateCommentResponse:
        """Change one's own comment; listed files are added to it."""
        user = caller_id()
        comment_id = parse_uuid(request.comment_id, field="commentId")
        content = clean_content(request.content)
        files = attachment_ids(request.attachment_ids)
        async with self.ctx.database.unit_of_work() as session:
            comment, _, seen = await see_comment(session, self.ctx.directory, comment_id, user, lock=True)
            if comment.user_id != user:
                raise Forbidden("Only the author can edit this comment")
            comment.content = content
            comment.updated_at = datetime.now(UTC)
            session.add(comment)
            await session.flush()
            await attachments.confirm(
                session,
                ids=files,
                entity_type=ENTITY_COMMENT,
                entity_id=comment.id,
                project=seen.project,
                user_id=user,
                store=self.ctx.store,
            )
            inlined = await attachment_api.inline(session, self.ctx.store, ENTITY_COMMENT, [comment.id])
            message = comment_message(comment, inlined[comment.id])
        return board_pb2.UpdateCommentResponse(comment=message)

    async def DeleteComment(
        self, request: board_pb2.DeleteCommentRequest, context: Context
    ) -> board_pb2.DeleteCommentResponse:
        """Delete a comment and its files: its author, or the project's OWNER or ADMIN."""
        user = caller_id()
        comment_id = parse_uuid(request.comment_id, field="commentId")
        async with self.ctx.database.unit_of_work() as session:
            comment, _, seen = await see_comment(session, self.ctx.directory, comment_id, user, lock=True)
            if comment.user_id != user and not seen.manages:
                raise Forbidden("Only the author or a project owner or admin can delete this comment")
            released = await attachments.release(session, comment_ids=[comment.id])
            await session.exec(sql_delete(Comment).where(col(Comment.id) == comment.id))
        await attachment_api.purge(self.ctx, released)
        return board_pb2.DeleteCommentResponse()
