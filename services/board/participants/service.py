"""A board's participants: add several at once (with a result per user), list, remove one; no protobuf.

Who (:mod:`access`): those who may change the board add and remove participants; a participant may
also remove themselves (leave the board).

Writers lock the board row first (the servicer sees the board with ``lock=True``), so concurrent adds and
removes of one board (and board updates that replace the set) run one after the other and "already a
participant" is answered truthfully.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete as sql_delete
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh import Forbidden, InvalidArgument, InvalidField, NotFound, parse_uuids
from services.board.access import NOT_BOARD_EDITOR, Seen, changes_board
from services.board.boards.service import Roles, participant_rows, participants_of
from services.board.models import Board, Participant

MAX_USERS = 50
NOT_A_MEMBER = "User is not a member of this workspace"
ALREADY = "Participant already exists"
ALL_FAILED = "All participants failed to add"


def parse_users(values: Sequence[str]) -> list[uuid.UUID]:
    """The users of an add: 1-50 ids, duplicates dropped."""
    users = parse_uuids(values, field="userIds")
    if not users:
        raise InvalidField("userIds", "at least one user id is required")
    if len(users) > MAX_USERS:
        raise InvalidField("userIds", f"at most {MAX_USERS} user ids")
    return users


@dataclass(frozen=True, slots=True)
class Added:
    """An add's outcome: each user with its error ("" when added), and those added."""

    results: list[tuple[uuid.UUID, str]]
    added: list[uuid.UUID]


async def add_participants(
    session: AsyncSession, *, board: Board, seen: Seen, users: Sequence[uuid.UUID], directory: Roles
) -> Added:
    """Add the workspace members among ``users`` who are not participants yet; INVALID_ARGUMENT if none."""
    roles = await directory.roles(seen.project.workspace_id, users)
    current = set((await participants_of(session, board_ids=[board.id]))[board.id])
    results: list[tuple[uuid.UUID, str]] = []
    added: list[uuid.UUID] = []
    for person in users:
        error = NOT_A_MEMBER if roles.get(person) is None else ALREADY if person in current else ""
        if not error:
            session.add(Participant(board_id=board.id, user_id=person))
            added.append(person)
        results.append((person, error))
    if not added:
        raise InvalidArgument(ALL_FAILED)
    return Added(results=results, added=added)


async def list_participants(session: AsyncSession, *, board: Board) -> list[Participant]:
    """The board's participants in the order they were added."""
    return await participant_rows(session, board_ids=[board.id])


async def remove_participant(
    session: AsyncSession, *, board: Board, seen: Seen, user_id: uuid.UUID, actor: uuid.UUID
) -> None:
    """Remove one participant; NOT_FOUND when the user does not take part in the board."""
    # Those who may change the board remove anyone; a participant may also leave on their own.
    if user_id != actor and not changes_board(seen, board, actor):
        raise Forbidden(NOT_BOARD_EDITOR)
    removed = await session.exec(
        sql_delete(Participant)
        .where(col(Participant.board_id) == board.id, col(Participant.user_id) == user_id)
        .returning(col(Participant.id))
    )
    if removed.first() is None:
        raise NotFound("Participant not found")
