"""Who may see and change what in the board service.

Seeing: a project, its boards, comments, options and files exist only for members of the project's
workspace (the user service says who they are). To anyone else they are NOT_FOUND, whatever the id,
so ids of another tenant reveal nothing.

Changing: within a workspace, project roles (OWNER, ADMIN, MEMBER, kept here in ``project_members``)
decide who works on a project; a workspace member outside the project only reads it, unless a board
names them. The rule for boards (stated in ``board.proto`` too):

- a project member (any role) creates boards in the project;
- a board is changed (fields, moves, participants, files) by the project's members and by the people the
  board names as its own: its author and its assignee;
- a board is deleted (with its comments, participants and files) by its author, its assignee, or the
  project's OWNER or an ADMIN;
- those who may change a board, and its participants, comment on it; a participant may leave it;
- a comment is edited by its author only, and deleted by its author or the project's OWNER or an ADMIN.

A refusal among members is FORBIDDEN (HTTP 403 ``FORBIDDEN``, what the web client shows) and changes
nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh import DEBUG_WORKLOAD, Forbidden, InvalidField, NotFound, current_call
from services.board.models import MANAGER_ROLES, Board, Comment, Project, ProjectMember


class Memberships(Protocol):
    """Who belongs to which workspace: :class:`services.board.directory.Directory` answers it.

    Named by what the rules need rather than by the directory itself, which is a gRPC client: the
    domain layer decides on the answer without knowing how it was fetched.
    """

    async def role(self, workspace_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
        """The user's role in the workspace, or ``None`` for a non-member."""
        ...


def by_operator() -> bool:
    """Whether the call comes from the operator identity (``debug``, grpcurl).

    The operator may call every method declared without side effects, so such a method must then leave
    no trace either: no presence, no remembered project.
    """
    call = current_call()
    return call is not None and call.caller == DEBUG_WORKLOAD


def check_dates(start: datetime | None, due: datetime | None) -> None:
    """INVALID_ARGUMENT naming startDate when the start is after the due date."""
    if start is not None and due is not None and start > due:
        raise InvalidField("startDate", "Start date cannot be after due date")


@dataclass(frozen=True, slots=True)
class Seen:
    """A project as the caller may see it: with the caller's workspace role and project role."""

    project: Project
    workspace_role: str
    project_role: str | None

    @property
    def manages(self) -> bool:
        """Whether the caller is the project's OWNER or an ADMIN of it."""
        return self.project_role in MANAGER_ROLES


async def project_role(session: AsyncSession, project_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    """The user's role in the project, or ``None`` when they are not a member of it."""
    role: str | None = await session.scalar(
        select(col(ProjectMember.role_name)).where(
            col(ProjectMember.project_id) == project_id, col(ProjectMember.user_id) == user_id
        )
    )
    return role


async def see_project(
    session: AsyncSession,
    directory: Memberships,
    project_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    lock: bool = False,
) -> Seen:
    """The project if the user is a member of its workspace; NOT_FOUND otherwise (or when it is gone)."""
    query = select(Project).where(col(Project.id) == project_id)
    if lock:
        query = query.with_for_update()
    project = await session.scalar(query)
    if project is None:
        raise NotFound("Project not found")
    role = await directory.role(project.workspace_id, user_id)
    if role is None:
        raise NotFound("Project not found")
    return Seen(project, role, await project_role(session, project.id, user_id))


async def require_member(
    directory: Memberships, workspace_id: uuid.UUID | None, user_id: uuid.UUID
) -> uuid.UUID:
    """:func:`see_project`'s check for a read that looked the project's workspace up itself.

    ``workspace_id`` is ``None`` when there is no such project; NOT_FOUND then, and when the user is not a
    member of the workspace. Returns the workspace id.
    """
    if workspace_id is None or await directory.role(workspace_id, user_id) is None:
        raise NotFound("Project not found")
    return workspace_id


async def see_board(
    session: AsyncSession,
    directory: Memberships,
    board_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    lock: bool = False,
) -> tuple[Board, Seen]:
    """The board and its project if the user is a member of the project's workspace; else NOT_FOUND."""
    query = select(Board).where(col(Board.id) == board_id)
    if lock:
        query = query.with_for_update()
    board = await session.scalar(query)
    if board is None:
        raise NotFound("Board not found")
    try:
        seen = await see_project(session, directory, board.project_id, user_id)
    except NotFound:
        raise NotFound("Board not found") from None
    return board, seen


async def see_comment(
    session: AsyncSession,
    directory: Memberships,
    comment_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    lock: bool = False,
) -> tuple[Comment, Board, Seen]:
    """The comment, its board and project if the user may see them; else NOT_FOUND."""
    query = select(Comment).where(col(Comment.id) == comment_id)
    if lock:
        query = query.with_for_update()
    comment = await session.scalar(query)
    if comment is None:
        raise NotFound("Comment not found")
    try:
        board, seen = await see_board(session, directory, comment.board_id, user_id)
    except NotFound:
        raise NotFound("Comment not found") from None
    return comment, board, seen


NOT_PROJECT_MEMBER = "You are not a member of this project"
NOT_BOARD_EDITOR = "Only project members, the board's author or its assignee can change this board"
NOT_BOARD_DELETER = "Only the board's author, its assignee or a project owner or admin can delete this board"
NOT_COMMENTER = "Only project members and the board's author, assignee and participants can comment on it"


def require_project_member(seen: Seen) -> None:
    """FORBIDDEN unless the caller is a member of the project (any role)."""
    if seen.project_role is None:
        raise Forbidden(NOT_PROJECT_MEMBER)


def changes_board(seen: Seen, board: Board, user_id: uuid.UUID) -> bool:
    """Whether the user may change the board: a project member, its author or its assignee."""
    return seen.project_role is not None or user_id in (board.author_id, board.assignee_id)


def require_board_editor(seen: Seen, board: Board, user_id: uuid.UUID) -> None:
    """FORBIDDEN unless the user may change the board (see :func:`changes_board`)."""
    if not changes_board(seen, board, user_id):
        raise Forbidden(NOT_BOARD_EDITOR)


def require_board_deleter(seen: Seen, board: Board, user_id: uuid.UUID) -> None:
    """FORBIDDEN unless the user is the board's author or assignee, or manages the project.

    Narrower than changing it: deleting takes the comments, participants and files with it, which a
    project MEMBER did not necessarily write.
    """
    if not (seen.manages or user_id in (board.author_id, board.assignee_id)):
        raise Forbidden(NOT_BOARD_DELETER)


def require_commenter(
    seen: Seen, board: Board, user_id: uuid.UUID, participants: Collection[uuid.UUID]
) -> None:
    """FORBIDDEN unless the user may change the board or takes part in it."""
    if not (changes_board(seen, board, user_id) or user_id in participants):
        raise Forbidden(NOT_COMMENTER)


def require_manager(seen: Seen, message: str) -> None:
    """FORBIDDEN with ``message`` unless the caller is the project's OWNER or an ADMIN."""
    if not seen.manages:
        raise Forbidden(message)
