"""User domain functions: keyword-only, session first, no protobuf."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh import InvalidField, NotFound
from services.user.models import DEFAULT_WORKSPACE_ID, User, UserProfile

# Deliberately loose: the address comes from Google or from our own test login; this refuses garbage,
# it does not try to be RFC 5322.
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")
PROVIDERS = frozenset({"google", "test", "dev"})
MAX_NAME = 100


def parse_user_id(value: str, *, field: str = "userId") -> uuid.UUID:
    """A user id from a request field; INVALID_ARGUMENT naming the field when it is not a UUID."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidField(field, "must be a UUID") from None


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
    """The active account with this e-mail, or a new one with its default profile.

    Two logins racing for the same new e-mail both end with the same row: the insert skips on the
    unique index of active e-mails and the loser reads the winner's row.
    """
    email = normalize_email(email)
    if provider not in PROVIDERS:
        raise InvalidField("provider", f"must be one of {', '.join(sorted(PROVIDERS))}")
    name = name.strip() or email.split("@", 1)[0]
    if len(name) > MAX_NAME:
        raise InvalidField("name", f"must be at most {MAX_NAME} characters")
    found = await _active_by_email(session, email)
    if found is not None:
        return await _link_google(session, found, provider, provider_subject), False
    now = datetime.now(UTC)
    new_id = uuid.uuid4()
    inserted = await session.exec(
        insert(User)
        .values(
            id=new_id,
            email=email,
            name=name,
            google_id=(provider_subject or None) if provider == "google" else None,
            provider=provider,
            is_active=True,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=[func.lower(col(User.email))], index_where=col(User.deleted_at).is_(None)
        )
        .returning(col(User.id))
    )
    if inserted.first() is None:
        raced = await _active_by_email(session, email)
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


async def _active_by_email(session: AsyncSession, email: str) -> User | None:
    statement = select(User).where(func.lower(User.email) == email, col(User.deleted_at).is_(None))
    return (await session.exec(statement)).first()


async def _link_google(session: AsyncSession, user: User, provider: str, subject: str) -> User:
    """Remember the Google subject of an account first made by the test or dev login."""
    if provider == "google" and subject and user.google_id is None:
        user.google_id = subject
        user.updated_at = datetime.now(UTC)
        session.add(user)
        await session.flush()
    return user
