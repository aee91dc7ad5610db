"""A board's participants: add several at once (with a result per user), list, remove one.

Who (:mod:`access`): those who may change the board add and remove participants; a participant may
also remove themselves (leave the board).

Writers lock the board row first, so concurrent adds and removes of one board (and board updates that
replace the set) run one after the other and "already a participant" is answered truthfully.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete as sql_delete
from sqlmodel import col
from wealist.board.v1 import board_pb2, board_pb2_grpc

from mesh import (
    Context,
    Forbidden,
    InvalidArgument,
    InvalidField,
    NotFound,
    caller_id,
    parse_uuid,
    parse_uuids,
)
from services.board.access import NOT_BOARD_EDITOR, changes_board, require_board_editor, see_board
from services.board.boards.service import participant_rows, participants_of
from services.board.boards.servicer import participant_message
from services.board.context import BoardContext
from services.board.models import Participant
from services.board.notify import BOARD_PARTICIPANT_ADDED, Notifier

MAX_USERS = 50
NOT_A_MEMBER = "User is not a member of this workspace"
ALREADY = "Participant already exists"
ALL_FAILED = "All participants failed to add"
# The response metadata the gateway reads to answer another 2xx (grpc-gateway's convention).
HTTP_CODE = "x-http-code"
MULTI_STATUS = "207"


class ParticipantServicer(board_pb2_grpc.ParticipantServiceServicer):
    """Participants of the boards of the caller's workspaces."""

    def __init__(self, ctx: BoardContext, notifier: Notifier) -> None:
        self.ctx = ctx
        self.notifier = notifier

    async def AddParticipants(
        self, request: board_pb2.AddParticipantsRequest, context: Context
    ) -> board_pb2.AddParticipantsResponse:
        """Add users to a board: 201 when all were added, 207 when some were, 400 when none was."""
        user = caller_id()
        board_id = parse_uuid(request.board_id, field="boardId")
        users = parse_uuids(request.user_ids, field="userIds")
        if not users:
            raise InvalidField("userIds", "at least one user id is required")
        if len(users) > MAX_USERS:
            raise InvalidField("userIds", f"at most {MAX_USERS} user ids")
        results: list[board_pb2.ParticipantResult] = []
        async with self.ctx.database.unit_of_work() as session:
            board, seen = await see_board(session, self.ctx.directory, board_id, user, lock=True)
            require_board_editor(seen, board, user)
            roles = await self.ctx.directory.roles(seen.project.workspace_id, users)
            current = set((await participants_of(session, [board.id]))[board.id])
            added: list[uuid.UUID] = []
            for person in users:
                error = NOT_A_MEMBER if roles.get(person) is None else ALREADY if person in current else ""
                if not error:
                    session.add(Participant(board_id=board.id, user_id=person))
                    added.append(person)
                results.append(
                    board_pb2.ParticipantResult(user_id=str(person), success=not error, error=error)
                )
            if not added:
                raise InvalidArgument(ALL_FAILED)
            self.notifier.enqueue(
                session,
                event_type=BOARD_PARTICIPANT_ADDED,
                actor_id=user,
                targets=added,
                board=board,
                project=seen.project,
            )
        self.notifier.poke()
        if len(added) < len(users):
            await context.send_initial_metadata(((HTTP_CODE, MULTI_STATUS),))
        return board_pb2.AddParticipantsResponse(
            total_requested=len(users),
            total_success=len(added),
            total_failed=len(users) - len(added),
            results=results,
        )

    async def ListParticipants(
        self, request: board_pb2.ListParticipantsRequest, context: Context
    ) -> board_pb2.ListParticipantsResponse:
        """A board's participants in the order they were added."""
        user = caller_id()
        board_id = parse_uuid(request.board_id, field="boardId")
        async with self.ctx.database.unit_of_work() as session:
            board, _ = await see_board(session, self.ctx.directory, board_id, user)
            rows = await participant_rows(session, [board.id])
        return board_pb2.ListParticipantsResponse(participants=[participant_message(row) for row in rows])

    async def RemoveParticipant(
        self, request: board_pb2.RemoveParticipantRequest, context: Context
    ) -> board_pb2.RemoveParticipantResponse:
        """Remove one participant; NOT_FOUND when the user does not take part in the board."""
        user = caller_id()
        board_id = parse_uuid(request.board_id, field="boardId")
        target = parse_uuid(request.user_id, field="userId")
        async with self.ctx.database.unit_of_work() as session:
            board, seen = await see_board(session, self.ctx.directory, board_id, user, lock=True)
            # Those who may change the board remove anyone; a participant may also leave on their own.
            if target != user and not changes_board(seen, board, user):
                raise Forbidden(NOT_BOARD_EDITOR)
            removed = await session.exec(
                sql_delete(Participant)
                .where(col(Participant.board_id) == board.id, col(Participant.user_id) == target)
                .returning(col(Participant.id))
            )
            if removed.first() is None:
                raise NotFound("Participant not found")
        return board_pb2.RemoveParticipantResponse()
