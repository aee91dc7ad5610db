"""Members and roles of a workspace: keyword-only, session first, no protobuf.

The rules, with the original's defects fixed: the member list is for members; a member id is always
looked up inside the workspace of the path; the OWNER is never removed or demoted and OWNER is never
assigned; an ADMIN cannot change or remove another ADMIN; at most ``MAX_ADMINS`` ADMINs, counted under a
lock on the workspace row so that two concurrent promotions cannot both pass.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete as sql_delete
from sqlalchemy import func
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh import AlreadyExists, Forbidden, InvalidField, NotFound
from services.user.accounts.service import normalize_email, verified_by_email
from services.user.checks import MAX_BATCH
from services.user.join_requests.service import close_pending
from services.user.models import (
    DEFAULT_WORKSPACE_ID,
    REQUEST_APPROVED,
    ROLE_ADMIN,
    ROLE_MEMBER,
    ROLE_OWNER,
    User,
    UserProfile,
    Workspace,
    WorkspaceMember,
)
from services.user.workspaces.service import (
    MANAGER_ROLES,
    add_member,
    as_manager,
    as_member,
    get_membership,
    live_workspace,
)

MAX_ADMINS = 4
ASSIGNABLE_ROLES = frozenset({ROLE_ADMIN, ROLE_MEMBER})


@dataclass(frozen=True, slots=True)
class MemberView:
    """A membership with what the member list shows: e-mail, nickname and picture."""

    member: WorkspaceMember
    email: str | None
    nick_name: str | None
    profile_image_url: str | None


async def _member_views(
    session: AsyncSession, *, workspace_id: uuid.UUID, member_ids: Sequence[uuid.UUID] | None = None
) -> list[MemberView]:
    """Active members with e-mail and the workspace profile (else the default one), in one query."""
    own = aliased(UserProfile)
    default = aliased(UserProfile)
    statement = (
        select(
            WorkspaceMember,
            User.email,
            func.coalesce(own.nick_name, default.nick_name),
            func.coalesce(own.profile_image_url, default.profile_image_url),
        )
        .join(User, col(User.id) == col(WorkspaceMember.user_id))
        .outerjoin(
            own, (col(own.user_id) == col(WorkspaceMember.user_id)) & (col(own.workspace_id) == workspace_id)
        )
        .outerjoin(
            default,
            (col(default.user_id) == col(WorkspaceMember.user_id))
            & (col(default.workspace_id) == DEFAULT_WORKSPACE_ID),
        )
        .where(WorkspaceMember.workspace_id == workspace_id, col(WorkspaceMember.is_active).is_(True))
        .order_by(col(WorkspaceMember.joined_at), col(WorkspaceMember.id))
    )
    if member_ids is not None:
        statement = statement.where(col(WorkspaceMember.id).in_(member_ids))
    rows = (await session.exec(statement)).all()
    return [MemberView(member, email, nick, image) for member, email, nick, image in rows]


async def _member_view(session: AsyncSession, member: WorkspaceMember) -> MemberView:
    views = await _member_views(session, workspace_id=member.workspace_id, member_ids=[member.id])
    return views[0] if views else MemberView(member, None, None, None)


async def list_members(
    session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID
) -> list[MemberView]:
    """The active members of a workspace; the caller must be one of them."""
    await as_member(session, workspace_id=workspace_id, caller_id=caller_id)
    return await _member_views(session, workspace_id=workspace_id)


async def _admin_count(session: AsyncSession, workspace_id: uuid.UUID) -> int:
    statement = select(func.count()).where(
        WorkspaceMember.workspace_id == workspace_id,
        col(WorkspaceMember.is_active).is_(True),
        WorkspaceMember.role_name == ROLE_ADMIN,
    )
    return int((await session.exec(statement)).one())


def _assignable_role(role_name: str, *, default: str | None = None) -> str:
    role = role_name.strip().upper() or (default or "")
    if role == ROLE_OWNER:
        raise Forbidden("the OWNER role cannot be assigned", code="OWNER_NOT_ASSIGNABLE")
    if role not in ASSIGNABLE_ROLES:
        raise InvalidField("roleName", "must be ADMIN or MEMBER")
    return role


async def _check_admin_room(session: AsyncSession, workspace_id: uuid.UUID) -> None:
    # The caller holds the workspace row lock (taken by as_manager(lock=True)), so the count is stable.
    if await _admin_count(session, workspace_id) >= MAX_ADMINS:
        raise Forbidden(f"a workspace has at most {MAX_ADMINS} admins", code="ADMIN_LIMIT")


async def invite_member(
    session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID, email: str, role_name: str
) -> MemberView:
    """Add the account with this e-mail to the workspace; the OWNER or an ADMIN.

    ``onlyOwnerCanInvite`` keeps the contract's meaning: with it on, the OWNER and ADMINs invite; with it
    off, any member may (the original refused MEMBERs either way, which left the flag without effect).
    A pending join request of the invitee is closed as APPROVED.
    """
    address = normalize_email(email)
    role = _assignable_role(role_name, default=ROLE_MEMBER)
    workspace, member = await as_member(session, workspace_id=workspace_id, caller_id=caller_id, lock=True)
    if workspace.only_owner_can_invite and member.role_name not in MANAGER_ROLES:
        raise Forbidden("only the owner and admins can invite members", code="NOT_A_MANAGER")
    if role == ROLE_ADMIN and member.role_name not in MANAGER_ROLES:
        raise Forbidden("only the owner and admins can make admins", code="NOT_A_MANAGER")
    # Only a verified address names a person: an invitation must not reach whoever typed it in.
    invitee = await verified_by_email(session, address)
    if invitee is None:
        raise NotFound("no user with this e-mail", code="USER_NOT_FOUND")
    if await get_membership(session, workspace_id=workspace_id, user_id=invitee.id) is not None:
        raise AlreadyExists("already a member of this workspace", code="ALREADY_MEMBER")
    if role == ROLE_ADMIN:
        await _check_admin_room(session, workspace_id)
    added = await add_member(session, workspace_id=workspace_id, user_id=invitee.id, role=role)
    await close_pending(session, workspace_id=workspace_id, user_id=invitee.id, status=REQUEST_APPROVED)
    return await _member_view(session, added)


async def _target_member(
    session: AsyncSession, *, workspace_id: uuid.UUID, member_id: uuid.UUID
) -> WorkspaceMember:
    """The active member with this id *in this workspace*: a member id of another workspace is NOT_FOUND."""
    statement = select(WorkspaceMember).where(
        WorkspaceMember.id == member_id,
        WorkspaceMember.workspace_id == workspace_id,
        col(WorkspaceMember.is_active).is_(True),
    )
    target = (await session.exec(statement)).first()
    if target is None:
        raise NotFound("member not found", code="MEMBER_NOT_FOUND")
    return target


async def update_member_role(
    session: AsyncSession,
    *,
    caller_id: uuid.UUID,
    workspace_id: uuid.UUID,
    member_id: uuid.UUID,
    role_name: str,
) -> MemberView:
    """Change a member's role to ADMIN or MEMBER (rules in the module docstring)."""
    role = _assignable_role(role_name)
    _, caller = await as_manager(session, workspace_id=workspace_id, caller_id=caller_id, lock=True)
    target = await _target_member(session, workspace_id=workspace_id, member_id=member_id)
    if target.role_name == ROLE_OWNER:
        raise Forbidden("the owner's role cannot change", code="OWNER_IMMUTABLE")
    # ADMINs may promote MEMBERs; only the OWNER changes an ADMIN (the original let ADMINs demote each other).
    if caller.role_name != ROLE_OWNER and target.role_name == ROLE_ADMIN:
        raise Forbidden("only the owner may change an admin's role", code="NOT_THE_OWNER")
    if role == ROLE_ADMIN and target.role_name != ROLE_ADMIN:
        await _check_admin_room(session, workspace_id)
    target.role_name = role
    target.updated_at = datetime.now(UTC)
    session.add(target)
    await session.flush()
    return await _member_view(session, target)


async def remove_member(
    session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID, member_id: uuid.UUID
) -> uuid.UUID:
    """Remove a member, or let the caller leave; deletes the member's profile in that workspace.

    Returns the removed user's id (the other services are told who left).

    The OWNER is never removed (and cannot leave); MEMBERs remove only themselves; ADMINs remove MEMBERs.
    """
    _, caller = await as_member(session, workspace_id=workspace_id, caller_id=caller_id)
    target = await _target_member(session, workspace_id=workspace_id, member_id=member_id)
    if target.role_name == ROLE_OWNER:
        raise Forbidden("the owner cannot be removed", code="OWNER_IMMUTABLE")
    if target.id != caller.id:
        if caller.role_name == ROLE_MEMBER:
            raise Forbidden("members cannot remove others", code="NOT_A_MANAGER")
        if caller.role_name == ROLE_ADMIN and target.role_name == ROLE_ADMIN:
            raise Forbidden("only the owner may remove an admin", code="NOT_THE_OWNER")
    target.is_active = False
    target.is_default = False
    target.updated_at = datetime.now(UTC)
    session.add(target)
    await session.exec(
        sql_delete(UserProfile).where(
            col(UserProfile.user_id) == target.user_id, col(UserProfile.workspace_id) == workspace_id
        )
    )
    await session.flush()
    return target.user_id


async def validate_member(
    session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    """Whether a user is an active member; only members may ask (a public workspace no longer says yes)."""
    await as_member(session, workspace_id=workspace_id, caller_id=caller_id)
    return await get_membership(session, workspace_id=workspace_id, user_id=user_id) is not None


async def shares_workspace(session: AsyncSession, *, user_id: uuid.UUID, other_id: uuid.UUID) -> bool:
    """Whether two users are active members of one live workspace (a user shares with itself)."""
    if user_id == other_id:
        return True
    theirs = aliased(WorkspaceMember)
    statement = (
        select(WorkspaceMember.id)
        .join(theirs, col(theirs.workspace_id) == col(WorkspaceMember.workspace_id))
        .join(Workspace, col(Workspace.id) == col(WorkspaceMember.workspace_id))
        .where(
            WorkspaceMember.user_id == user_id,
            col(WorkspaceMember.is_active).is_(True),
            col(theirs.user_id) == other_id,
            col(theirs.is_active).is_(True),
            *live_workspace(),  # type: ignore[arg-type]
        )
        .limit(1)
    )
    return (await session.exec(statement)).first() is not None


async def memberships(
    session: AsyncSession, *, workspace_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Role by user id of the given users who are active members of a live workspace, in one query."""
    if len(user_ids) > MAX_BATCH:
        raise InvalidField("userIds", f"must hold at most {MAX_BATCH} ids")
    if not user_ids:
        return {}
    statement = (
        select(WorkspaceMember.user_id, WorkspaceMember.role_name)
        .join(Workspace, col(Workspace.id) == col(WorkspaceMember.workspace_id))
        .where(
            WorkspaceMember.workspace_id == workspace_id,
            col(WorkspaceMember.user_id).in_(user_ids),
            col(WorkspaceMember.is_active).is_(True),
            *live_workspace(),  # type: ignore[arg-type]
        )
    )
    return dict((await session.exec(statement)).all())
