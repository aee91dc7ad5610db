"""Requests to join a workspace: keyword-only, session first, no protobuf.

Join requests are for the OWNER and ADMINs to see and decide; one PENDING request per (workspace, user),
enforced by a partial unique index; a request leaves PENDING exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh import AlreadyExists, Conflict, InvalidField, NotFound
from services.user.accounts.service import get_or_raise
from services.user.models import (
    DEFAULT_WORKSPACE_ID,
    REQUEST_APPROVED,
    REQUEST_PENDING,
    REQUEST_REJECTED,
    ROLE_MEMBER,
    User,
    UserProfile,
    Workspace,
    WorkspaceJoinRequest,
)
from services.user.workspaces.service import add_member, as_manager, as_visitor, get_membership

REQUEST_STATES = frozenset({REQUEST_PENDING, REQUEST_APPROVED, REQUEST_REJECTED})


@dataclass(frozen=True, slots=True)
class JoinRequestView:
    """A join request with the requester's e-mail and nickname and the workspace's name."""

    request: WorkspaceJoinRequest
    email: str | None
    nick_name: str | None
    workspace_name: str | None


async def _join_request_view(session: AsyncSession, request: WorkspaceJoinRequest) -> JoinRequestView:
    views = await _join_request_views(session, workspace_id=request.workspace_id, request_ids=[request.id])
    return views[0] if views else JoinRequestView(request, None, None, None)


async def _join_request_views(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    status: str | None = None,
    request_ids: Sequence[uuid.UUID] | None = None,
) -> list[JoinRequestView]:
    """Join requests with the requester's e-mail and default nickname and the workspace name, one query."""
    default = aliased(UserProfile)
    statement = (
        select(WorkspaceJoinRequest, User.email, default.nick_name, Workspace.workspace_name)
        .join(User, col(User.id) == col(WorkspaceJoinRequest.user_id))
        .join(Workspace, col(Workspace.id) == col(WorkspaceJoinRequest.workspace_id))
        .outerjoin(
            default,
            (col(default.user_id) == col(WorkspaceJoinRequest.user_id))
            & (col(default.workspace_id) == DEFAULT_WORKSPACE_ID),
        )
        .where(WorkspaceJoinRequest.workspace_id == workspace_id)
    )
    if status is not None:
        statement = statement.where(WorkspaceJoinRequest.status == status)
    if request_ids is not None:
        statement = statement.where(col(WorkspaceJoinRequest.id).in_(request_ids))
    statement = statement.order_by(col(WorkspaceJoinRequest.requested_at), col(WorkspaceJoinRequest.id))
    rows = (await session.exec(statement)).all()
    return [JoinRequestView(request, email, nick, name) for request, email, nick, name in rows]


async def create_join_request(
    session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID
) -> JoinRequestView:
    """Ask to join a public workspace.

    Without ``needApproved`` the caller becomes a MEMBER at once and the request is stored as APPROVED
    (the original answered with a made-up id it never saved). A second PENDING request is ALREADY_EXISTS.
    """
    await get_or_raise(session, user_id=caller_id)
    workspace, member = await as_visitor(session, workspace_id=workspace_id, caller_id=caller_id)
    if member is not None:
        raise AlreadyExists("already a member of this workspace", code="ALREADY_MEMBER")
    now = datetime.now(UTC)
    request = WorkspaceJoinRequest(
        workspace_id=workspace_id,
        user_id=caller_id,
        status=REQUEST_PENDING if workspace.need_approved else REQUEST_APPROVED,
        requested_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(request)
            await session.flush()
    except IntegrityError:
        raise AlreadyExists("a join request is already pending", code="REQUEST_PENDING") from None
    if not workspace.need_approved:
        await add_member(session, workspace_id=workspace_id, user_id=caller_id, role=ROLE_MEMBER)
    return await _join_request_view(session, request)


async def list_join_requests(
    session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID, status: str
) -> list[JoinRequestView]:
    """Join requests of a workspace in one state (PENDING by default), oldest first; OWNER or ADMIN."""
    state = status.strip().upper() or REQUEST_PENDING
    if state not in REQUEST_STATES:
        raise InvalidField("status", "must be PENDING, APPROVED or REJECTED")
    await as_manager(session, workspace_id=workspace_id, caller_id=caller_id)
    return await _join_request_views(session, workspace_id=workspace_id, status=state)


async def close_pending(
    session: AsyncSession, *, workspace_id: uuid.UUID, user_id: uuid.UUID, status: str
) -> None:
    await session.exec(
        sql_update(WorkspaceJoinRequest)
        .where(
            col(WorkspaceJoinRequest.workspace_id) == workspace_id,
            col(WorkspaceJoinRequest.user_id) == user_id,
            col(WorkspaceJoinRequest.status) == REQUEST_PENDING,
        )
        .values(status=status, updated_at=datetime.now(UTC))
    )


async def _decide(session: AsyncSession, request: WorkspaceJoinRequest, *, approve: bool) -> JoinRequestView:
    """PENDING → APPROVED (with a MEMBER membership) or REJECTED; CONFLICT when already decided."""
    if request.status != REQUEST_PENDING:
        raise Conflict("the request was already processed", code="REQUEST_PROCESSED")
    request.status = REQUEST_APPROVED if approve else REQUEST_REJECTED
    request.updated_at = datetime.now(UTC)
    session.add(request)
    await session.flush()
    if (
        approve
        and await get_membership(session, workspace_id=request.workspace_id, user_id=request.user_id) is None
    ):
        await add_member(
            session, workspace_id=request.workspace_id, user_id=request.user_id, role=ROLE_MEMBER
        )
    return await _join_request_view(session, request)


async def process_join_request(
    session: AsyncSession,
    *,
    caller_id: uuid.UUID,
    workspace_id: uuid.UUID,
    request_id: uuid.UUID,
    status: str,
) -> JoinRequestView:
    """Approve or reject a join request by id; OWNER or ADMIN; a request of another workspace is NOT_FOUND."""
    state = status.strip().upper()
    if state not in (REQUEST_APPROVED, REQUEST_REJECTED):
        raise InvalidField("status", "must be APPROVED or REJECTED")
    await as_manager(session, workspace_id=workspace_id, caller_id=caller_id)
    statement = (
        select(WorkspaceJoinRequest)
        .where(WorkspaceJoinRequest.id == request_id, WorkspaceJoinRequest.workspace_id == workspace_id)
        .with_for_update()
    )
    request = (await session.exec(statement)).first()
    if request is None:
        raise NotFound("join request not found", code="REQUEST_NOT_FOUND")
    return await _decide(session, request, approve=state == REQUEST_APPROVED)


async def decide_pending_of_user(
    session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID, user_id: uuid.UUID, approve: bool
) -> JoinRequestView:
    """Approve or reject the user's PENDING request, as the web client's approve/reject buttons do."""
    await as_manager(session, workspace_id=workspace_id, caller_id=caller_id)
    statement = (
        select(WorkspaceJoinRequest)
        .where(
            WorkspaceJoinRequest.workspace_id == workspace_id,
            WorkspaceJoinRequest.user_id == user_id,
            WorkspaceJoinRequest.status == REQUEST_PENDING,
        )
        .with_for_update()
    )
    request = (await session.exec(statement)).first()
    if request is None:
        raise NotFound("no pending join request of this user", code="REQUEST_NOT_FOUND")
    return await _decide(session, request, approve=approve)
