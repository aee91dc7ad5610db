"""Comments over gRPC: protobuf ↔ :mod:`services.board.comments.service`; no SQL here.

The board's assignee and participants are told of a new comment (through the outbox, poked after the
commit); files of a deleted comment are purged from S3 after the commit.
"""

from __future__ import annotations

from typing_extensions import override
from wealist.board.v1 import board_pb2, board_pb2_grpc

from mesh import Context, InvalidField, caller_id, parse_uuid
from services.board.access import see_board, see_comment
from services.board.attachments import servicer as attachment_api
from services.board.boards.service import attachment_ids
from services.board.boards.servicer import comment_message
from services.board.comments import service
from services.board.context import BoardContext
from services.board.models import ENTITY_COMMENT
from services.board.notify import BOARD_COMMENT_ADDED, Notifier


class CommentServicer(board_pb2_grpc.CommentServiceServicer):
    """Comments on the boards of the caller's workspaces."""

    def __init__(self, ctx: BoardContext, notifier: Notifier) -> None:
        self.ctx = ctx
        self.notifier = notifier

    @override
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
            rows, files = await service.list_comments(session, board=board)
        store = self.ctx.store
        return board_pb2.ListCommentsResponse(
            comments=[
                comment_message(row, [attachment_api.inline_message(file, store) for file in files[row.id]])
                for row in rows
            ]
        )

    @override
    async def CreateComment(
        self, request: board_pb2.CreateCommentRequest, context: Context
    ) -> board_pb2.CreateCommentResponse:
        """Comment on a board, confirming its files in the same transaction; the board's people are told."""
        user = caller_id()
        if not request.board_id.strip():
            raise InvalidField("boardId", "Board ID is required")
        board_id = parse_uuid(request.board_id, field="boardId")
        content = service.clean_content(request.content)
        files = attachment_ids(request.attachment_ids)
        async with self.ctx.database.unit_of_work() as session:
            board, seen = await see_board(session, self.ctx.directory, board_id, user)
            comment, people = await service.create_comment(
                session,
                board=board,
                seen=seen,
                user_id=user,
                content=content,
                attachment_ids=files,
                store=self.ctx.store,
            )
            self.notifier.enqueue(
                session,
                event_type=BOARD_COMMENT_ADDED,
                actor_id=user,
                targets=[board.assignee_id, *people],
                board=board,
                project=seen.project,
                metadata={"commentId": str(comment.id), "commentPreview": service.preview(content)},
            )
            inlined = await attachment_api.inline(session, self.ctx.store, ENTITY_COMMENT, [comment.id])
            message = comment_message(comment, inlined[comment.id])
        self.notifier.poke()
        return board_pb2.CreateCommentResponse(comment=message)

    @override
    async def UpdateComment(
        self, request: board_pb2.UpdateCommentRequest, context: Context
    ) -> board_pb2.UpdateCommentResponse:
        """Change one's own comment; listed files are added to it."""
        user = caller_id()
        comment_id = parse_uuid(request.comment_id, field="commentId")
        content = service.clean_content(request.content)
        files = attachment_ids(request.attachment_ids)
        async with self.ctx.database.unit_of_work() as session:
            comment, _, seen = await see_comment(session, self.ctx.directory, comment_id, user, lock=True)
            await service.update_comment(
                session,
                comment=comment,
                seen=seen,
                user_id=user,
                content=content,
                attachment_ids=files,
                store=self.ctx.store,
            )
            inlined = await attachment_api.inline(session, self.ctx.store, ENTITY_COMMENT, [comment.id])
            message = comment_message(comment, inlined[comment.id])
        return board_pb2.UpdateCommentResponse(comment=message)

    @override
    async def DeleteComment(
        self, request: board_pb2.DeleteCommentRequest, context: Context
    ) -> board_pb2.DeleteCommentResponse:
        """Delete a comment and its files: its author, or the project's OWNER or ADMIN."""
        user = caller_id()
        comment_id = parse_uuid(request.comment_id, field="commentId")
        async with self.ctx.database.unit_of_work() as session:
            comment, _, seen = await see_comment(session, self.ctx.directory, comment_id, user, lock=True)
            released = await service.delete_comment(session, comment=comment, seen=seen, user_id=user)
        await attachment_api.purge(self.ctx, released)
        return board_pb2.DeleteCommentResponse()
