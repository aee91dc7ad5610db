"""Workspaces, and who may see and manage one: keyword-only, session first, no protobuf.

The access rules every other part of the service builds on live here, with the original's defects fixed:
a private workspace does not exist for non-members (NOT_FOUND), so ids cannot be probed; settings are for
members, their changes for the OWNER and ADMINs only; only the OWNER deletes a workspace.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh import AlreadyExists, Forbidden, InvalidField, NotFound
from services.user.accounts.service import get_or_raise
from services.user.checks import bounded_text
from services.user.models import (
    DEFAULT_WORKSPACE_ID,
    REQUEST_PENDING,
    ROLE_ADMIN,
    ROLE_OWNER,
    Workspace,
    WorkspaceJoinRequest,
    WorkspaceMember,
)

MAX_WORKSPACE_NAME = 100
MAX_DESCRIPTION = 1000
# The contract's search returns at most 20 workspaces.
SEARCH_LIMIT = 20
MANAGER_ROLES = frozenset({ROLE_OWNER, ROLE_ADMIN})


@dataclass(frozen=True, slots=True)
class MyWorkspace:
    """One of the caller's workspaces with the caller's role there (PENDING while a request waits)."""

    workspace: Workspace
    role: str
    is_default: bool = False


def _description(value: str | None) -> str | None:
    """A workspace description: at most 1000 characters; blank means none."""
    if value is None:
        return None
    text = value.strip()
    if len(text) > MAX_DESCRIPTION:
        raise InvalidField("workspaceDescription", f"must be at most {MAX_DESCRIPTION} characters")
    return text or None


def live_workspace() -> list[object]:
    # The default workspace (all zeros) is a technical row for default profiles, never a real workspace.
    return [
        col(Workspace.deleted_at).is_(None),
        col(Workspace.is_active).is_(True),
        Workspace.id != DEFAULT_WORKSPACE_ID,
    ]


async def get_workspace(
    session: AsyncSession, *, workspace_id: uuid.UUID, lock: bool = False
) -> Workspace | None:
    """The live workspace with this id, or None (deleted ones and the default workspace count as none)."""
    statement = select(Workspace).where(Workspace.id == workspace_id, *live_workspace())  # type: ignore[arg-type]
    if lock:
        statement = statement.with_for_update()
    return (await session.exec(statement)).first()


async def get_workspace_or_raise(session: AsyncSession, *, workspace_id: uuid.UUID) -> Workspace:
    """The live workspace with this id; NOT_FOUND otherwise."""
    workspace = await get_workspace(session, workspace_id=workspace_id)
    if workspace is None:
        raise NotFound("workspace not found", code="WORKSPACE_NOT_FOUND")
    return workspace


async def get_membership(
    session: AsyncSession, *, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> WorkspaceMember | None:
    """The active membership of a user in a workspace, if any."""
    statement = select(WorkspaceMember).where(
        WorkspaceMember.workspace_id == workspace_id,
        WorkspaceMember.user_id == user_id,
        col(WorkspaceMember.is_active).is_(True),
    )
    return (await session.exec(statement)).first()


async def as_visitor(
    session: AsyncSession, *, workspace_id: uuid.UUID, caller_id: uuid.UUID, lock: bool = False
) -> tuple[Workspace, WorkspaceMember | None]:
    """The workspace as the caller may see it.

    NOT_FOUND when it is deleted, or private and the caller is no member (its existence stays hidden).
    """
    workspace = await get_workspace(session, workspace_id=workspace_id, lock=lock)
    if workspace is None:
        raise NotFound("workspace not found", code="WORKSPACE_NOT_FOUND")
    member = await get_membership(session, workspace_id=workspace_id, user_id=caller_id)
    if member is None and not workspace.is_public:
        raise NotFound("workspace not found", code="WORKSPACE_NOT_FOUND")
    return workspace, member


async def as_member(
    session: AsyncSession, *, workspace_id: uuid.UUID, caller_id: uuid.UUID, lock: bool = False
) -> tuple[Workspace, WorkspaceMember]:
    """The workspace and the caller's membership; FORBIDDEN for a non-member of a public workspace."""
    workspace, member = await as_visitor(session, workspace_id=workspace_id, caller_id=caller_id, lock=lock)
    if member is None:
        raise Forbidden("not a member of this workspace", code="NOT_A_MEMBER")
    return workspace, member


async def as_manager(
    session: AsyncSession, *, workspace_id: uuid.UUID, caller_id: uuid.UUID, lock: bool = False
) -> tuple[Workspace, WorkspaceMember]:
    """The workspace and the caller's membership; FORBIDDEN unless the caller is the OWNER or an ADMIN."""
    workspace, member = await as_member(session, workspace_id=workspace_id, caller_id=caller_id, lock=lock)
    if member.role_name not in MANAGER_ROLES:
        raise Forbidden("only the owner or an admin may do this", code="NOT_A_MANAGER")
    return workspace, member


async def add_member(
    session: AsyncSession, *, workspace_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> WorkspaceMember:
    """Insert an active membership; ALREADY_EXISTS when the user is a member already (race included)."""
    now = datetime.now(UTC)
    member = WorkspaceMember(
        workspace_id=workspace_id, user_id=user_id, role_name=role, joined_at=now, updated_at=now
    )
    try:
        async with session.begin_nested():
            session.add(member)
            await session.flush()
    except IntegrityError:
        raise AlreadyExists("already a member of this workspace", code="ALREADY_MEMBER") from None
    return member


async def create_workspace(
    session: AsyncSession,
    *,
    caller_id: uuid.UUID,
    name: str,
    description: str | None,
    is_public: bool,
    need_approved: bool,
    only_owner_can_invite: bool,
) -> Workspace:
    """A new workspace owned by the caller, with the caller's OWNER membership.

    The new membership becomes the caller's default only when the caller has no default yet (the
    original marked every new one default, leaving several).
    """
    workspace_name = bounded_text(name, field="workspaceName", maximum=MAX_WORKSPACE_NAME)
    await get_or_raise(session, user_id=caller_id)
    now = datetime.now(UTC)
    workspace = Workspace(
        owner_id=caller_id,
        workspace_name=workspace_name,
        workspace_description=_description(description),
        is_public=is_public,
        need_approved=need_approved,
        only_owner_can_invite=only_owner_can_invite,
        created_at=now,
        updated_at=now,
    )
    session.add(workspace)
    await session.flush()
    has_default = (
        await session.exec(
            select(WorkspaceMember.id).where(
                WorkspaceMember.user_id == caller_id,
                col(WorkspaceMember.is_active).is_(True),
                col(WorkspaceMember.is_default).is_(True),
            )
        )
    ).first()
    session.add(
        WorkspaceMember(
            workspace_id=workspace.id,
            user_id=caller_id,
            role_name=ROLE_OWNER,
            is_default=has_default is None,
            joined_at=now,
            updated_at=now,
        )
    )
    await session.flush()
    return workspace


async def list_my_workspaces(session: AsyncSession, *, caller_id: uuid.UUID) -> list[MyWorkspace]:
    """The caller's workspaces, oldest membership first, then those it asked to join (role PENDING).

    The web client shows a waiting request in the same list ("승인 대기"), so it is listed here.
    """
    members = (
        select(Workspace, WorkspaceMember)
        .join(WorkspaceMember, col(WorkspaceMember.workspace_id) == col(Workspace.id))
        .where(
            WorkspaceMember.user_id == caller_id,
            col(WorkspaceMember.is_active).is_(True),
            *live_workspace(),  # type: ignore[arg-type]
        )
        .order_by(col(WorkspaceMember.joined_at), col(WorkspaceMember.id))
    )
    pending = (
        select(Workspace)
        .join(WorkspaceJoinRequest, col(WorkspaceJoinRequest.workspace_id) == col(Workspace.id))
        .where(
            WorkspaceJoinRequest.user_id == caller_id,
            WorkspaceJoinRequest.status == REQUEST_PENDING,
            *live_workspace(),  # type: ignore[arg-type]
        )
        .order_by(col(WorkspaceJoinRequest.requested_at))
    )
    mine = [
        MyWorkspace(workspace, member.role_name, member.is_default)
        for workspace, member in (await session.exec(members)).all()
    ]
    return mine + [
        MyWorkspace(workspace, REQUEST_PENDING) for workspace in (await session.exec(pending)).all()
    ]


def _like_pattern(text: str) -> str:
    # The search text is literal: escape LIKE's wildcards so "50%" finds "50%", not everything.
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_public_workspaces(session: AsyncSession, *, text: str) -> list[Workspace]:
    """Live public workspaces whose name contains ``text`` (case-insensitive), newest first, at most 20."""
    needle = bounded_text(text, field="workspaceName", maximum=MAX_WORKSPACE_NAME)
    statement = (
        select(Workspace)
        .where(
            col(Workspace.is_public).is_(True),
            col(Workspace.workspace_name).ilike(_like_pattern(needle), escape="\\"),
            *live_workspace(),  # type: ignore[arg-type]
        )
        .order_by(col(Workspace.created_at).desc())
        .limit(SEARCH_LIMIT)
    )
    return list((await session.exec(statement)).all())


async def get_visible_workspace(
    session: AsyncSession, *, workspace_id: uuid.UUID, caller_id: uuid.UUID
) -> tuple[Workspace, bool]:
    """A workspace the caller may see: public, or one it is a member of (NOT_FOUND otherwise), and
    whether the caller is a member."""
    workspace, member = await as_visitor(session, workspace_id=workspace_id, caller_id=caller_id)
    return workspace, member is not None


async def member_of(
    session: AsyncSession, *, user_id: uuid.UUID, workspace_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Those of ``workspace_ids`` the user is an active member of, in one query."""
    if not workspace_ids:
        return set()
    statement = select(WorkspaceMember.workspace_id).where(
        WorkspaceMember.user_id == user_id,
        col(WorkspaceMember.is_active).is_(True),
        col(WorkspaceMember.workspace_id).in_(workspace_ids),
    )
    return set((await session.exec(statement)).all())


async def update_workspace(
    session: AsyncSession,
    *,
    caller_id: uuid.UUID,
    workspace_id: uuid.UUID,
    name: str | None = None,
    description: str | None = None,
    is_public: bool | None = None,
    need_approved: bool | None = None,
    only_owner_can_invite: bool | None = None,
) -> Workspace:
    """Change a workspace's name, description or policies; the OWNER or an ADMIN. Unset fields stay."""
    workspace, _ = await as_manager(session, workspace_id=workspace_id, caller_id=caller_id)
    if name is not None:
        workspace.workspace_name = bounded_text(name, field="workspaceName", maximum=MAX_WORKSPACE_NAME)
    if description is not None:
        workspace.workspace_description = _description(description)
    if is_public is not None:
        workspace.is_public = is_public
    if need_approved is not None:
        workspace.need_approved = need_approved
    if only_owner_can_invite is not None:
        workspace.only_owner_can_invite = only_owner_can_invite
    workspace.updated_at = datetime.now(UTC)
    session.add(workspace)
    await session.flush()
    return workspace


async def delete_workspace(session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID) -> None:
    """Soft-delete a workspace; the OWNER only. Memberships and profiles stay, unreachable."""
    workspace, _ = await as_member(session, workspace_id=workspace_id, caller_id=caller_id)
    if workspace.owner_id != caller_id:
        raise Forbidden("only the owner may delete the workspace", code="NOT_THE_OWNER")
    now = datetime.now(UTC)
    workspace.is_active = False
    workspace.deleted_at = now
    workspace.updated_at = now
    session.add(workspace)
    await session.flush()


async def set_default_workspace(
    session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID
) -> None:
    """Make one of the caller's workspaces its default and clear the flag on the others."""
    _, member = await as_member(session, workspace_id=workspace_id, caller_id=caller_id)
    await session.exec(
        sql_update(WorkspaceMember)
        .where(col(WorkspaceMember.user_id) == caller_id, col(WorkspaceMember.id) != member.id)
        .values(is_default=False)
    )
    member.is_default = True
    member.updated_at = datetime.now(UTC)
    session.add(member)
    await session.flush()


async def get_settings(session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID) -> Workspace:
    """A workspace whose settings the caller may read: members only."""
    workspace, _ = await as_member(session, workspace_id=workspace_id, caller_id=caller_id)
    return workspace
