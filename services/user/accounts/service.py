"""Accounts: which account a login reaches, and closing, restoring and reading accounts.

Keyword-only, session first, no protobuf.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh import Conflict, FailedPrecondition, Forbidden, InvalidField, NotFound
from services.user.checks import MAX_BATCH
from services.user.models import DEFAULT_WORKSPACE_ID, User, UserProfile

# Deliberately loose: the address comes from Google or from our own test login; this refuses garbage,
# it does not try to be RFC 5322.
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")
PROVIDERS = frozenset({"google", "test", "dev"})
MAX_NAME = 100
MAX_EMAIL = 320


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
    found = await verified_by_email(session, email)
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


async def verified_by_email(session: AsyncSession, email: str) -> User | None:
    """The active account that holds ``email`` (lower-cased) as its verified address."""
    statement = select(User).where(
        func.lower(User.email) == email, col(User.email_verified).is_(True), col(User.deleted_at).is_(None)
    )
    return (await session.exec(statement)).first()


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
    if user.email_verified and await verified_by_email(session, user.email.lower()) is not None:
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
