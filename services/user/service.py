"""User domain functions: keyword-only, session first, no protobuf.

Users, workspaces, memberships and roles, join requests, profiles and profile pictures. Every permission
rule of the contract lives here, with the original's defects fixed:

- a private workspace does not exist for non-members (NOT_FOUND), so ids cannot be probed;
- members, settings and join requests are for members (settings changes and member management for the
  OWNER and ADMINs only); only the OWNER deletes a workspace;
- a member id is always looked up inside the workspace of the path;
- the OWNER is never removed or demoted and OWNER is never assigned; an ADMIN cannot change or remove
  another ADMIN; at most ``MAX_ADMINS`` ADMINs, counted under a lock on the workspace row so that two
  concurrent promotions cannot both pass;
- one PENDING join request per (workspace, user), enforced by a partial unique index.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete as sql_delete
from sqlalchemy import func
from sqlalchemy import update as sql_update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh import AlreadyExists, Conflict, FailedPrecondition, Forbidden, InvalidField, NotFound, parse_uuid
from services.user.models import (
    ATTACHMENT_CONFIRMED,
    ATTACHMENT_TEMP,
    DEFAULT_WORKSPACE_ID,
    ENTITY_USER_PROFILE,
    REQUEST_APPROVED,
    REQUEST_PENDING,
    REQUEST_REJECTED,
    ROLE_ADMIN,
    ROLE_MEMBER,
    ROLE_OWNER,
    Attachment,
    User,
    UserProfile,
    Workspace,
    WorkspaceJoinRequest,
    WorkspaceMember,
)

# Deliberately loose: the address comes from Google or from our own test login; this refuses garbage,
# it does not try to be RFC 5322.
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")
PROVIDERS = frozenset({"google", "test", "dev"})
MAX_NAME = 100
MAX_EMAIL = 320
MAX_WORKSPACE_NAME = 100
MAX_DESCRIPTION = 1000
MAX_NICK_NAME = 50
MAX_URL = 2048
MAX_ADMINS = 4
# The contract's search returns at most 20 workspaces.
SEARCH_LIMIT = 20
# Internal batch calls are bounded so one call cannot ask for the whole table.
MAX_BATCH = 500
ASSIGNABLE_ROLES = frozenset({ROLE_ADMIN, ROLE_MEMBER})
MANAGER_ROLES = frozenset({ROLE_OWNER, ROLE_ADMIN})
REQUEST_STATES = frozenset({REQUEST_PENDING, REQUEST_APPROVED, REQUEST_REJECTED})
IMAGE_TYPES = frozenset({"image/jpeg", "image/jpg", "image/png", "image/gif", "image/webp"})
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_FILE_NAME = 255
# A TEMP attachment not used by a profile within this time may be swept.
ATTACHMENT_TTL = timedelta(hours=1)


def parse_user_id(value: str, *, field: str = "userId") -> uuid.UUID:
    """A user id from a request field; INVALID_ARGUMENT naming the field when it is not a UUID."""
    return parse_uuid(value, field=field)


def _text(value: str, *, field: str, maximum: int, minimum: int = 1) -> str:
    """Trimmed text within bounds; INVALID_ARGUMENT naming the field otherwise."""
    text = value.strip()
    if len(text) < minimum:
        raise InvalidField(field, "must not be empty")
    if len(text) > maximum:
        raise InvalidField(field, f"must be at most {maximum} characters")
    return text


def _description(value: str | None) -> str | None:
    """A workspace description: at most 1000 characters; blank means none."""
    if value is None:
        return None
    text = value.strip()
    if len(text) > MAX_DESCRIPTION:
        raise InvalidField("workspaceDescription", f"must be at most {MAX_DESCRIPTION} characters")
    return text or None


def _image_url(value: str | None) -> str | None:
    """A picture URL: http(s), at most 2048 characters; blank clears it."""
    if value is None:
        return None
    url = value.strip()
    if not url:
        return None
    if len(url) > MAX_URL or not url.startswith(("http://", "https://")):
        raise InvalidField("profileImageUrl", f"must be an http(s) URL of at most {MAX_URL} characters")
    return url


def normalize_email(value: str) -> str:
    """Trimmed, lower-cased e-mail; INVALID_ARGUMENT when it does not look like one."""
    email = value.strip().lower()
    if not EMAIL_PATTERN.match(email):
        raise InvalidField("email", "must be an e-mail address")
    return email


async def get_or_raise(session: AsyncSession, *, user_id: uuid.UUID) -> User:
    """The active user with this id; NOT_FOUND otherwise."""
    user = await session.get(User, user_id)
    if user is None or user.deleted_at is not None or not user.is_active:
        raise NotFound("user not found")
    return user


async def exists(session: AsyncSession, *, user_id: uuid.UUID) -> bool:
    """Whether an active user with this id exists."""
    statement = select(User.id).where(
        User.id == user_id, col(User.deleted_at).is_(None), col(User.is_active).is_(True)
    )
    return (await session.exec(statement)).first() is not None


async def find_or_create_for_login(
    session: AsyncSession, *, email: str, name: str, provider: str, provider_subject: str
) -> tuple[User, bool]:
    """The account a login lands in, or a new one with its default profile; ``True`` when new.

    ``email`` must be an address the provider verified (auth refuses Google accounts without one; the
    dev and test logins are trusted by configuration). The rule, so that nobody can claim an address
    before its owner first logs in:

    1. a Google login lands in the account linked to its subject (Google's ``sub``), whatever its
       e-mail is now;
    2. otherwise in the account whose *verified* e-mail is the login's: a Google login links its subject
       to it, unless the account is linked to another Google subject (``FAILED_PRECONDITION``
       ``ACCOUNT_LINKED_ELSEWHERE``: the address changed hands at Google, or someone else holds it);
    3. otherwise in a new account with this verified e-mail.

    Two logins racing for the same new account both end with the same row: the insert skips on the
    unique indexes and the loser goes through the rule again, finding the winner's row.
    """
    email = normalize_email(email)
    if provider not in PROVIDERS:
        raise InvalidField("provider", f"must be one of {', '.join(sorted(PROVIDERS))}")
    subject = provider_subject.strip() if provider == "google" else ""
    if provider == "google" and not subject:
        raise InvalidField("providerSubject", "is required for a Google login")
    name = name.strip() or email.split("@", 1)[0]
    if len(name) > MAX_NAME:
        raise InvalidField("name", f"must be at most {MAX_NAME} characters")
    found = await _existing_for_login(session, email=email, subject=subject)
    if found is not None:
        return found, False
    now = datetime.now(UTC)
    new_id = uuid.uuid4()
    inserted = await session.exec(
        insert(User)
        .values(
            id=new_id,
            email=email,
            email_verified=True,
            name=name,
            google_id=subject or None,
            provider=provider,
            is_active=True,
            created_at=now,
            updated_at=now,
        )
        # No arbiter: either unique index (verified e-mail, Google subject) means a concurrent login won.
        .on_conflict_do_nothing()
        .returning(col(User.id))
    )
    if inserted.first() is None:
        raced = await _existing_for_login(session, email=email, subject=subject)
        if raced is None:  # pragma: no cover - the conflicting row was deleted in between
            raise NotFound("user not found")
        return raced, False
    await session.exec(
        insert(UserProfile)
        .values(
            id=uuid.uuid4(),
            user_id=new_id,
            workspace_id=DEFAULT_WORKSPACE_ID,
            nick_name=name,
            email=email,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(constraint="uq_user_profiles_user_workspace")
    )
    return await get_or_raise(session, user_id=new_id), True


async def _existing_for_login(session: AsyncSession, *, email: str, subject: str) -> User | None:
    """Steps 1 and 2 of :func:`find_or_create_for_login`: the account this login may enter, if any."""
    if subject:
        statement = select(User).where(User.google_id == subject, col(User.deleted_at).is_(None))
        linked = (await session.exec(statement)).first()
        if linked is not None:
            return linked
    found = await _verified_by_email(session, email)
    if found is None or not subject:
        return found
    if found.google_id is not None:
        # Step 1 missed, so this account belongs to another Google identity: never merge the two.
        raise FailedPrecondition(
            "this e-mail belongs to an account linked to another Google account",
            code="ACCOUNT_LINKED_ELSEWHERE",
        )
    found.google_id = subject
    found.updated_at = datetime.now(UTC)
    session.add(found)
    await session.flush()
    return found


async def _verified_by_email(session: AsyncSession, email: str) -> User | None:
    """The active account that holds ``email`` (lower-cased) as its verified address."""
    statement = select(User).where(
        func.lower(User.email) == email, col(User.email_verified).is_(True), col(User.deleted_at).is_(None)
    )
    return (await session.exec(statement)).first()


# --- users ------------------------------------------------------------------------------------------------


async def delete(session: AsyncSession, *, user_id: uuid.UUID) -> None:
    """Soft-delete an account: it disappears from every lookup and its e-mail is free for a new login."""
    user = await get_or_raise(session, user_id=user_id)
    now = datetime.now(UTC)
    user.is_active = False
    user.deleted_at = now
    user.updated_at = now
    session.add(user)
    await session.flush()


async def update(
    session: AsyncSession, *, caller_id: uuid.UUID, user_id: uuid.UUID, email: str | None
) -> User:
    """Check an update of the caller's own account; FORBIDDEN for anyone else's.

    The e-mail cannot be changed: an account's address is the one its login provider verified, and a
    typed-in one would let anyone claim an address before its owner logs in (there is no way here to
    prove an address, and the web client never changes it). Sending the current address is accepted.
    """
    if caller_id != user_id:
        raise Forbidden("cannot update another user", code="FORBIDDEN")
    user = await get_or_raise(session, user_id=user_id)
    if email is not None:
        if len(email) > MAX_EMAIL:
            raise InvalidField("email", f"must be at most {MAX_EMAIL} characters")
        if normalize_email(email) != user.email.lower():
            raise InvalidField(
                "email",
                "cannot be changed: it is the address the account's login verified",
                code="EMAIL_NOT_CHANGEABLE",
            )
    return user


async def restore(session: AsyncSession, *, caller_id: uuid.UUID, user_id: uuid.UUID) -> User:
    """Undo the caller's own soft delete (the original let anyone restore anyone).

    CONFLICT when a new account took the e-mail or the Google account meanwhile: two active accounts may
    not share either.
    """
    if caller_id != user_id:
        raise Forbidden("cannot restore another user", code="FORBIDDEN")
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    if user.deleted_at is None and user.is_active:
        return user
    if user.email_verified and await _verified_by_email(session, user.email.lower()) is not None:
        raise Conflict("a newer account uses this e-mail")
    if user.google_id is not None:
        linked = select(User.id).where(User.google_id == user.google_id, col(User.deleted_at).is_(None))
        if (await session.exec(linked)).first() is not None:
            raise Conflict("a newer account is linked to this Google account")
    user.is_active = True
    user.deleted_at = None
    user.updated_at = datetime.now(UTC)
    session.add(user)
    await session.flush()
    return user


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
            *_live_workspace(),  # type: ignore[arg-type]
        )
        .limit(1)
    )
    return (await session.exec(statement)).first() is not None


async def list_by_ids(session: AsyncSession, *, user_ids: Sequence[uuid.UUID]) -> list[User]:
    """Active users with these ids, in one query; unknown ids are left out."""
    if len(user_ids) > MAX_BATCH:
        raise InvalidField("userIds", f"must hold at most {MAX_BATCH} ids")
    if not user_ids:
        return []
    statement = select(User).where(
        col(User.id).in_(user_ids), col(User.deleted_at).is_(None), col(User.is_active).is_(True)
    )
    return list((await session.exec(statement)).all())


# --- workspaces -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MyWorkspace:
    """One of the caller's workspaces with the caller's role there (PENDING while a request waits)."""

    workspace: Workspace
    role: str
    is_default: bool = False


@dataclass(frozen=True, slots=True)
class MemberView:
    """A membership with what the member list shows: e-mail, nickname and picture."""

    member: WorkspaceMember
    email: str | None
    nick_name: str | None
    profile_image_url: str | None


@dataclass(frozen=True, slots=True)
class JoinRequestView:
    """A join request with the requester's e-mail and nickname and the workspace's name."""

    request: WorkspaceJoinRequest
    email: str | None
    nick_name: str | None
    workspace_name: str | None


def _live_workspace() -> list[object]:
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
    statement = select(Workspace).where(Workspace.id == workspace_id, *_live_workspace())  # type: ignore[arg-type]
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


async def _visible(
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


async def _as_member(
    session: AsyncSession, *, workspace_id: uuid.UUID, caller_id: uuid.UUID, lock: bool = False
) -> tuple[Workspace, WorkspaceMember]:
    """The workspace and the caller's membership; FORBIDDEN for a non-member of a public workspace."""
    workspace, member = await _visible(session, workspace_id=workspace_id, caller_id=caller_id, lock=lock)
    if member is None:
        raise Forbidden("not a member of this workspace", code="NOT_A_MEMBER")
    return workspace, member


async def _as_manager(
    session: AsyncSession, *, workspace_id: uuid.UUID, caller_id: uuid.UUID, lock: bool = False
) -> tuple[Workspace, WorkspaceMember]:
    """The workspace and the caller's membership; FORBIDDEN unless the caller is the OWNER or an ADMIN."""
    workspace, member = await _as_member(session, workspace_id=workspace_id, caller_id=caller_id, lock=lock)
    if member.role_name not in MANAGER_ROLES:
        raise Forbidden("only the owner or an admin may do this", code="NOT_A_MANAGER")
    return workspace, member


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
    workspace_name = _text(name, field="workspaceName", maximum=MAX_WORKSPACE_NAME)
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
            *_live_workspace(),  # type: ignore[arg-type]
        )
        .order_by(col(WorkspaceMember.joined_at), col(WorkspaceMember.id))
    )
    pending = (
        select(Workspace)
        .join(WorkspaceJoinRequest, col(WorkspaceJoinRequest.workspace_id) == col(Workspace.id))
        .where(
            WorkspaceJoinRequest.user_id == caller_id,
            WorkspaceJoinRequest.status == REQUEST_PENDING,
            *_live_workspace(),  # type: ignore[arg-type]
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
    needle = _text(text, field="workspaceName", maximum=MAX_WORKSPACE_NAME)
    statement = (
        select(Workspace)
        .where(
            col(Workspace.is_public).is_(True),
            col(Workspace.workspace_name).ilike(_like_pattern(needle), escape="\\"),
            *_live_workspace(),  # type: ignore[arg-type]
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
    workspace, member = await _visible(session, workspace_id=workspace_id, caller_id=caller_id)
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
    workspace, _ = await _as_manager(session, workspace_id=workspace_id, caller_id=caller_id)
    if name is not None:
        workspace.workspace_name = _text(name, field="workspaceName", maximum=MAX_WORKSPACE_NAME)
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
    workspace, _ = await _as_member(session, workspace_id=workspace_id, caller_id=caller_id)
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
    _, member = await _as_member(session, workspace_id=workspace_id, caller_id=caller_id)
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
    workspace, _ = await _as_member(session, workspace_id=workspace_id, caller_id=caller_id)
    return workspace


# --- members ----------------------------------------------------------------------------------------------


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
    await _as_member(session, workspace_id=workspace_id, caller_id=caller_id)
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
    # The caller holds the workspace row lock (taken by _as_manager(lock=True)), so the count is stable.
    if await _admin_count(session, workspace_id) >= MAX_ADMINS:
        raise Forbidden(f"a workspace has at most {MAX_ADMINS} admins", code="ADMIN_LIMIT")


async def _add_member(
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
    workspace, member = await _as_member(session, workspace_id=workspace_id, caller_id=caller_id, lock=True)
    if workspace.only_owner_can_invite and member.role_name not in MANAGER_ROLES:
        raise Forbidden("only the owner and admins can invite members", code="NOT_A_MANAGER")
    if role == ROLE_ADMIN and member.role_name not in MANAGER_ROLES:
        raise Forbidden("only the owner and admins can make admins", code="NOT_A_MANAGER")
    # Only a verified address names a person: an invitation must not reach whoever typed it in.
    invitee = await _verified_by_email(session, address)
    if invitee is None:
        raise NotFound("no user with this e-mail", code="USER_NOT_FOUND")
    if await get_membership(session, workspace_id=workspace_id, user_id=invitee.id) is not None:
        raise AlreadyExists("already a member of this workspace", code="ALREADY_MEMBER")
    if role == ROLE_ADMIN:
        await _check_admin_room(session, workspace_id)
    added = await _add_member(session, workspace_id=workspace_id, user_id=invitee.id, role=role)
    await _close_pending(session, workspace_id=workspace_id, user_id=invitee.id, status=REQUEST_APPROVED)
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
    _, caller = await _as_manager(session, workspace_id=workspace_id, caller_id=caller_id, lock=True)
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
    _, caller = await _as_member(session, workspace_id=workspace_id, caller_id=caller_id)
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
    await _as_member(session, workspace_id=workspace_id, caller_id=caller_id)
    return await get_membership(session, workspace_id=workspace_id, user_id=user_id) is not None


# --- join requests ----------------------------------------------------------------------------------------


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
    workspace, member = await _visible(session, workspace_id=workspace_id, caller_id=caller_id)
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
        await _add_member(session, workspace_id=workspace_id, user_id=caller_id, role=ROLE_MEMBER)
    return await _join_request_view(session, request)


async def list_join_requests(
    session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID, status: str
) -> list[JoinRequestView]:
    """Join requests of a workspace in one state (PENDING by default), oldest first; OWNER or ADMIN."""
    state = status.strip().upper() or REQUEST_PENDING
    if state not in REQUEST_STATES:
        raise InvalidField("status", "must be PENDING, APPROVED or REJECTED")
    await _as_manager(session, workspace_id=workspace_id, caller_id=caller_id)
    return await _join_request_views(session, workspace_id=workspace_id, status=state)


async def _close_pending(
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
        await _add_member(
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
    await _as_manager(session, workspace_id=workspace_id, caller_id=caller_id)
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
    await _as_manager(session, workspace_id=workspace_id, caller_id=caller_id)
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


# --- internal lookups -------------------------------------------------------------------------------------


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
            *_live_workspace(),  # type: ignore[arg-type]
        )
    )
    return dict((await session.exec(statement)).all())


# --- profiles ---------------------------------------------------------------------------------------------


async def profiles_for(
    session: AsyncSession, *, workspace_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, UserProfile]:
    """Each user's profile in the workspace, else the default one, in one query.

    Users without any profile are absent from the answer.
    """
    if len(user_ids) > MAX_BATCH:
        raise InvalidField("userIds", f"must hold at most {MAX_BATCH} ids")
    if not user_ids:
        return {}
    statement = select(UserProfile).where(
        col(UserProfile.user_id).in_(user_ids),
        col(UserProfile.workspace_id).in_({workspace_id, DEFAULT_WORKSPACE_ID}),
    )
    found: dict[uuid.UUID, UserProfile] = {}
    for profile in (await session.exec(statement)).all():
        # The workspace's own profile wins over the default one.
        if profile.user_id not in found or profile.workspace_id != DEFAULT_WORKSPACE_ID:
            found[profile.user_id] = profile
    return found


async def get_profile_or_raise(
    session: AsyncSession, *, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> UserProfile:
    """A user's profile in a workspace, falling back to the default one; NOT_FOUND when neither exists."""
    profile = (await profiles_for(session, workspace_id=workspace_id, user_ids=[user_id])).get(user_id)
    if profile is None:
        raise NotFound("profile not found", code="PROFILE_NOT_FOUND")
    return profile


async def list_my_profiles(session: AsyncSession, *, caller_id: uuid.UUID) -> list[UserProfile]:
    """Every profile of the caller: the default one first, then by creation."""
    statement = (
        select(UserProfile)
        .where(UserProfile.user_id == caller_id)
        .order_by((col(UserProfile.workspace_id) != DEFAULT_WORKSPACE_ID), col(UserProfile.created_at))
    )
    return list((await session.exec(statement)).all())


async def _profile_workspace(session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID) -> None:
    # A workspace profile needs a membership; the default workspace (all zeros) is everyone's.
    if workspace_id != DEFAULT_WORKSPACE_ID:
        await _as_member(session, workspace_id=workspace_id, caller_id=caller_id)


async def create_profile(
    session: AsyncSession,
    *,
    caller_id: uuid.UUID,
    workspace_id: uuid.UUID,
    nick_name: str,
    profile_image_url: str | None,
) -> UserProfile:
    """The caller's profile in a workspace it is a member of; ALREADY_EXISTS when there is one."""
    nick = _text(nick_name, field="nickName", maximum=MAX_NICK_NAME)
    image = _image_url(profile_image_url)
    user = await get_or_raise(session, user_id=caller_id)
    if workspace_id == DEFAULT_WORKSPACE_ID:
        raise InvalidField("workspaceId", "the default profile exists already; update it instead")
    await _profile_workspace(session, caller_id=caller_id, workspace_id=workspace_id)
    now = datetime.now(UTC)
    profile = UserProfile(
        user_id=caller_id,
        workspace_id=workspace_id,
        nick_name=nick,
        email=user.email,
        profile_image_url=image,
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(profile)
            await session.flush()
    except IntegrityError:
        raise AlreadyExists("a profile exists for this workspace", code="PROFILE_EXISTS") from None
    return profile


async def _own_profile(
    session: AsyncSession, *, user: User, workspace_id: uuid.UUID, nick_name: str | None
) -> UserProfile:
    """The caller's profile in a workspace, created from the default one (or the account name) if missing."""
    statement = (
        select(UserProfile)
        .where(UserProfile.user_id == user.id, UserProfile.workspace_id == workspace_id)
        .with_for_update()
    )
    profile = (await session.exec(statement)).first()
    if profile is not None:
        return profile
    fallback = (await profiles_for(session, workspace_id=DEFAULT_WORKSPACE_ID, user_ids=[user.id])).get(
        user.id
    )
    now = datetime.now(UTC)
    await session.exec(
        insert(UserProfile)
        .values(
            id=uuid.uuid4(),
            user_id=user.id,
            workspace_id=workspace_id,
            nick_name=nick_name or (fallback.nick_name if fallback else None) or user.name or user.email,
            email=user.email,
            profile_image_url=fallback.profile_image_url if fallback else None,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(constraint="uq_user_profiles_user_workspace")
    )
    created = (await session.exec(statement)).first()
    if created is None:  # pragma: no cover - inserted or raced in the statement above
        raise NotFound("profile not found", code="PROFILE_NOT_FOUND")
    return created


async def update_my_profile(
    session: AsyncSession,
    *,
    caller_id: uuid.UUID,
    workspace_id: uuid.UUID,
    nick_name: str | None,
    profile_image_url: str | None,
) -> UserProfile:
    """Create or update the caller's profile in a workspace (all zeros: the default profile)."""
    nick = _text(nick_name, field="nickName", maximum=MAX_NICK_NAME) if nick_name is not None else None
    image = _image_url(profile_image_url)
    user = await get_or_raise(session, user_id=caller_id)
    await _profile_workspace(session, caller_id=caller_id, workspace_id=workspace_id)
    profile = await _own_profile(session, user=user, workspace_id=workspace_id, nick_name=nick)
    if nick is not None:
        profile.nick_name = nick
    if profile_image_url is not None:
        profile.profile_image_url = image
    profile.updated_at = datetime.now(UTC)
    session.add(profile)
    await session.flush()
    return profile


async def get_member_profile(
    session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> UserProfile:
    """A member's profile in a workspace (else its default one); the viewer and the user must be members."""
    await _as_member(session, workspace_id=workspace_id, caller_id=caller_id)
    if await get_membership(session, workspace_id=workspace_id, user_id=user_id) is None:
        raise NotFound("profile not found", code="PROFILE_NOT_FOUND")
    return await get_profile_or_raise(session, workspace_id=workspace_id, user_id=user_id)


async def delete_my_workspace_profile(
    session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID
) -> None:
    """Delete the caller's profile in a workspace (none is fine); the default profile is kept."""
    if workspace_id == DEFAULT_WORKSPACE_ID:
        raise InvalidField("workspaceId", "the default profile cannot be deleted")
    await session.exec(
        sql_delete(UserProfile).where(
            col(UserProfile.user_id) == caller_id, col(UserProfile.workspace_id) == workspace_id
        )
    )


# --- profile pictures -------------------------------------------------------------------------------------


def check_image(*, file_name: str, content_type: str, file_size: int) -> tuple[str, str]:
    """The trimmed file name and lower-cased type of an acceptable picture; INVALID_ARGUMENT otherwise."""
    name = _text(file_name, field="fileName", maximum=MAX_FILE_NAME)
    if "/" in name or "\\" in name:
        raise InvalidField("fileName", "must not contain a path")
    kind = content_type.strip().lower()
    if kind not in IMAGE_TYPES:
        raise InvalidField("contentType", "must be image/jpeg, image/png, image/gif or image/webp")
    if not 0 < file_size <= MAX_IMAGE_BYTES:
        raise InvalidField("fileSize", f"must be between 1 and {MAX_IMAGE_BYTES} bytes")
    return name, kind


def profile_image_key(*, user_id: uuid.UUID, file_name: str) -> str:
    """Where a user's picture goes: under the user's own prefix, with a random part against collisions."""
    return f"profiles/{user_id}/{uuid.uuid4()}/{file_name}"


async def create_attachment(
    session: AsyncSession,
    *,
    caller_id: uuid.UUID,
    file_key: str,
    file_name: str,
    content_type: str,
    file_size: int,
    file_url: str,
) -> Attachment:
    """Record an uploaded picture as a TEMP attachment; the key must be under the caller's own prefix."""
    name, kind = check_image(file_name=file_name, content_type=content_type, file_size=file_size)
    key = file_key.strip()
    if not key.startswith(f"profiles/{caller_id}/") or ".." in key:
        raise InvalidField("fileKey", "must be a key this user was given for an upload")
    now = datetime.now(UTC)
    attachment = Attachment(
        entity_type=ENTITY_USER_PROFILE,
        status=ATTACHMENT_TEMP,
        file_key=key,
        file_name=name,
        file_url=file_url,
        file_size=file_size,
        content_type=kind,
        uploaded_by=caller_id,
        expires_at=now + ATTACHMENT_TTL,
        created_at=now,
        updated_at=now,
    )
    session.add(attachment)
    await session.flush()
    return attachment


async def set_profile_image(
    session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID, attachment_id: uuid.UUID
) -> UserProfile:
    """Use a TEMP attachment of the caller as the picture of its profile in a workspace, confirming it."""
    user = await get_or_raise(session, user_id=caller_id)
    statement = (
        select(Attachment)
        .where(Attachment.id == attachment_id, col(Attachment.deleted_at).is_(None))
        .with_for_update()
    )
    attachment = (await session.exec(statement)).first()
    # Someone else's attachment is reported as missing: its id says nothing to this caller.
    if attachment is None or attachment.uploaded_by != caller_id:
        raise NotFound("attachment not found", code="ATTACHMENT_NOT_FOUND")
    if attachment.status != ATTACHMENT_TEMP:
        raise Conflict("the attachment is already in use", code="ATTACHMENT_NOT_TEMPORARY")
    await _profile_workspace(session, caller_id=caller_id, workspace_id=workspace_id)
    profile = await _own_profile(session, user=user, workspace_id=workspace_id, nick_name=None)
    now = datetime.now(UTC)
    profile.profile_image_url = attachment.file_url
    profile.updated_at = now
    attachment.status = ATTACHMENT_CONFIRMED
    attachment.entity_id = profile.id
    attachment.expires_at = None
    attachment.updated_at = now
    session.add_all([profile, attachment])
    await session.flush()
    return profile
