"""Participants over gRPC: protobuf ↔ :mod:`services.board.participants.service`; no SQL here."""

from __future__ import annotations

from typing_extensions import override
from wealist.board.v1 import board_pb2, board_pb2_grpc

from mesh import Context, caller_id, parse_uuid
from services.board.access import require_board_editor, see_board
from services.board.boards.servicer import participant_message
from services.board.context import BoardContext
from services.board.notify import BOARD_PARTICIPANT_ADDED, Notifier
from services.board.participants import service

# The response metadata the gateway reads to answer another 2xx (grpc-gateway's convention).
HTTP_CODE = "x-http-code"
MULTI_STATUS = "207"


class ParticipantServicer(board_pb2_grpc.ParticipantServiceServicer):
    """Participants of the boards of the caller's workspaces."""

    def __init__(self, ctx: BoardContext, notifier: Notifier) -> None:
        self.ctx = ctx
        self.notifier = notifier

    @override
    async def AddParticipants(
        self, request: board_pb2.AddParticipantsRequest, context: Context
    ) -> board_pb2.AddParticipantsResponse:
        """Add users to a board: 201 when all were added, 207 when some were, 400 when none was."""
        user = caller_id()
        board_id = parse_uuid(request.board_id, field="boardId")
        users = service.parse_users(request.user_ids)
        async with self.ctx.database.unit_of_work() as session:
            board, seen = await see_board(session, self.ctx.directory, board_id, user, lock=True)
            require_board_editor(seen, board, user)
            outcome = await service.add_participants(
                session, board=board, seen=seen, users=users, directory=self.ctx.directory
            )
            self.notifier.enqueue(
                session,
                event_type=BOARD_PARTICIPANT_ADDED,
                actor_id=user,
                targets=outcome.added,
                board=board,
                project=seen.project,
            )
        self.notifier.poke()
        added = outcome.added
        if len(added) < len(users):
            await context.send_initial_metadata(((HTTP_CODE, MULTI_STATUS),))
        return board_pb2.AddParticipantsResponse(
            total_requested=len(users),
            total_success=len(added),
            total_failed=len(users) - len(added),
            results=[
                board_pb2.ParticipantResult(user_id=str(person), success=not error, error=error)
                for person, error in outcome.results
            ],
        )

    @override
    async def ListParticipants(
        self, request: board_pb2.ListParticipantsRequest, context: Context
    ) -> board_pb2.ListParticipantsResponse:
        """A board's participants in the order they were added."""
        user = caller_id()
        board_id = parse_uuid(request.board_id, field="boardId")
        async with self.ctx.database.unit_of_work() as session:
            board, _ = await see_board(session, self.ctx.directory, board_id, user)
            rows = await service.list_participants(session, board=board)
        return board_pb2.ListParticipantsResponse(participants=[participant_message(row) for row in rows])

    @override
    async def RemoveParticipant(
        self, request: board_pb2.RemoveParticipantRequest, context: Context
    ) -> board_pb2.RemoveParticipantResponse:
        """Remove one participant; NOT_FOUND when the user does not take part in the board."""
        user = caller_id()
        board_id = parse_uuid(request.board_id, field="boardId")
        target = parse_uuid(request.user_id, field="userId")
        async with self.ctx.database.unit_of_work() as session:
            board, seen = await see_board(session, self.ctx.directory, board_id, user, lock=True)
            await service.remove_participant(session, board=board, seen=seen, user_id=target, actor=user)
        return board_pb2.RemoveParticipantResponse()
