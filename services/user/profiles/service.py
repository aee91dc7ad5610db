"""Profiles: a user's nickname and picture per workspace, with the default one as the fallback.

Keyword-only, session first, no protobuf.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete as sql_delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh import AlreadyExists, InvalidField, NotFound
from services.user.accounts.service import get_or_raise
from services.user.checks import MAX_BATCH, bounded_text
from services.user.models import DEFAULT_WORKSPACE_ID, User, UserProfile
from services.user.workspaces.service import as_member, get_membership

MAX_NICK_NAME = 50
MAX_URL = 2048


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


async def check_profile_workspace(
    session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID
) -> None:
    # A workspace profile needs a membership; the default workspace (all zeros) is everyone's.
    if workspace_id != DEFAULT_WORKSPACE_ID:
        await as_member(session, workspace_id=workspace_id, caller_id=caller_id)


async def create_profile(
    session: AsyncSession,
    *,
    caller_id: uuid.UUID,
    workspace_id: uuid.UUID,
    nick_name: str,
    profile_image_url: str | None,
) -> UserProfile:
    """The caller's profile in a workspace it is a member of; ALREADY_EXISTS when there is one."""
    nick = bounded_text(nick_name, field="nickName", maximum=MAX_NICK_NAME)
    image = _image_url(profile_image_url)
    user = await get_or_raise(session, user_id=caller_id)
    if workspace_id == DEFAULT_WORKSPACE_ID:
        raise InvalidField("workspaceId", "the default profile exists already; update it instead")
    await check_profile_workspace(session, caller_id=caller_id, workspace_id=workspace_id)
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


async def own_profile(
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
    nick = bounded_text(nick_name, field="nickName", maximum=MAX_NICK_NAME) if nick_name is not None else None
    image = _image_url(profile_image_url)
    user = await get_or_raise(session, user_id=caller_id)
    await check_profile_workspace(session, caller_id=caller_id, workspace_id=workspace_id)
    profile = await own_profile(session, user=user, workspace_id=workspace_id, nick_name=nick)
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
    await as_member(session, workspace_id=workspace_id, caller_id=caller_id)
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
