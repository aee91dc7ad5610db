"""Notification domain functions: keyword-only, session first, no protobuf and no Redis.

Every reader and writer of a user's notifications passes that user's id, and each query is filtered by
it, so another user's notification is indistinguishable from a missing one (NOT_FOUND). Creation skips
the actor's own actions and is idempotent per (idempotency key, target) through a partial unique index.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import func
from sqlalchemy import update as sql_update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh import Database, InvalidField, NotFound, parse_uuid
from services.noti.models import NOTIFICATION_TYPES, RESOURCE_TYPES, Notification
from services.noti.settings import NotiSettings

log = logging.getLogger("wealist.noti")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_BATCH = 100
MAX_RESOURCE_NAME = 255
MAX_IDEMPOTENCY_KEY = 128


@dataclass(frozen=True, slots=True)
class NewNotification:
    """A validated event, ready to store."""

    type: str
    actor_id: uuid.UUID
    target_user_id: uuid.UUID
    workspace_id: uuid.UUID
    resource_type: str
    resource_id: uuid.UUID
    resource_name: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None
    idempotency_key: str | None = None


def new_notification(
    *,
    type: str,
    actor_id: str,
    target_user_id: str,
    workspace_id: str,
    resource_type: str,
    resource_id: str,
    resource_name: str = "",
    details: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
    idempotency_key: str = "",
    prefix: str = "",
) -> NewNotification:
    """Validate an event's fields; ``prefix`` names the event in a batch (``events[3].``)."""
    kind = type.strip()
    if kind not in NOTIFICATION_TYPES:
        raise InvalidField(f"{prefix}type", "must be one of the contract's notification types")
    resource = resource_type.strip().lower()
    if resource not in RESOURCE_TYPES:
        raise InvalidField(f"{prefix}resourceType", f"must be one of {', '.join(sorted(RESOURCE_TYPES))}")
    name = resource_name.strip()
    if len(name) > MAX_RESOURCE_NAME:
        raise InvalidField(f"{prefix}resourceName", f"must be at most {MAX_RESOURCE_NAME} characters")
    key = idempotency_key.strip()
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidField(f"{prefix}idempotencyKey", f"must be at most {MAX_IDEMPOTENCY_KEY} characters")
    return NewNotification(
        type=kind,
        actor_id=parse_uuid(actor_id, field=f"{prefix}actorId", allow_nil=False),
        target_user_id=parse_uuid(target_user_id, field=f"{prefix}targetUserId", allow_nil=False),
        workspace_id=parse_uuid(workspace_id, field=f"{prefix}workspaceId", allow_nil=False),
        resource_type=resource,
        resource_id=parse_uuid(resource_id, field=f"{prefix}resourceId", allow_nil=False),
        resource_name=name,
        details=details or {},
        occurred_at=occurred_at,
        idempotency_key=key or None,
    )


@dataclass(frozen=True, slots=True)
class Created:
    """What became of one event: the stored notification (None when skipped) and whether it is new."""

    notification: Notification | None
    created: bool


async def create(session: AsyncSession, *, events: Sequence[NewNotification]) -> list[Created]:
    """Store the events, in order; the actor's own actions and repeated idempotency keys store nothing."""
    results: list[Created] = []
    for event in events:
        if event.actor_id == event.target_user_id:
            results.append(Created(None, created=False))
            continue
        row_id = uuid.uuid4()
        statement = (
            insert(Notification)
            .values(
                id=row_id,
                type=event.type,
                actor_id=event.actor_id,
                target_user_id=event.target_user_id,
                workspace_id=event.workspace_id,
                resource_type=event.resource_type,
                resource_id=event.resource_id,
                resource_name=event.resource_name,
                metadata=event.details,
                is_read=False,
                created_at=event.occurred_at or datetime.now(UTC),
                idempotency_key=event.idempotency_key,
            )
            .on_conflict_do_nothing(
                index_elements=[col(Notification.idempotency_key), col(Notification.target_user_id)],
                index_where=col(Notification.idempotency_key).is_not(None),
            )
            .returning(col(Notification.id))
        )
        inserted = (await session.exec(statement)).first()
        if inserted is not None:
            stored = await session.get(Notification, row_id)
            results.append(Created(stored, created=True))
            continue
        earlier = (
            await session.exec(
                select(Notification).where(
                    Notification.idempotency_key == event.idempotency_key,
                    Notification.target_user_id == event.target_user_id,
                )
            )
        ).first()
        results.append(Created(earlier, created=False))
    return results


def _scope(user_id: uuid.UUID, workspace_id: uuid.UUID | None) -> list[Any]:
    conditions: list[Any] = [col(Notification.target_user_id) == user_id]
    if workspace_id is not None:
        conditions.append(col(Notification.workspace_id) == workspace_id)
    return conditions


def page_bounds(page: int, limit: int) -> tuple[int, int]:
    """The contract's paging: page ≥ 1 (else 1), limit 1-100 (else 20)."""
    return (page if page >= 1 else 1, limit if 1 <= limit <= MAX_LIMIT else DEFAULT_LIMIT)


async def list_for_user(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    workspace_id: uuid.UUID | None,
    unread_only: bool,
    page: int,
    limit: int,
) -> tuple[Sequence[Notification], int]:
    """One page of the user's notifications, newest first, and how many there are in all."""
    conditions = _scope(user_id, workspace_id)
    if unread_only:
        conditions.append(col(Notification.is_read).is_(False))
    total = int((await session.exec(select(func.count()).select_from(Notification).where(*conditions))).one())
    statement = (
        select(Notification)
        .where(*conditions)
        .order_by(col(Notification.created_at).desc(), col(Notification.id).desc())
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return (await session.exec(statement)).all(), total


async def count_unread(session: AsyncSession, *, user_id: uuid.UUID, workspace_id: uuid.UUID | None) -> int:
    """How many of the user's notifications are unread (in one workspace, or in all)."""
    statement = (
        select(func.count())
        .select_from(Notification)
        .where(*_scope(user_id, workspace_id), col(Notification.is_read).is_(False))
    )
    return int((await session.exec(statement)).one())


async def get_or_raise(
    session: AsyncSession, *, user_id: uuid.UUID, notification_id: uuid.UUID
) -> Notification:
    """One of the user's notifications; NOT_FOUND when it is missing or someone else's."""
    statement = select(Notification).where(
        Notification.id == notification_id, Notification.target_user_id == user_id
    )
    found = (await session.exec(statement)).first()
    if found is None:
        raise NotFound("Notification not found")
    return found


async def mark_read(session: AsyncSession, *, user_id: uuid.UUID, notification_id: uuid.UUID) -> Notification:
    """Mark one of the user's notifications read; readAt keeps the time it was first read."""
    notification = await get_or_raise(session, user_id=user_id, notification_id=notification_id)
    if not notification.is_read:
        notification.is_read = True
        notification.read_at = datetime.now(UTC)
        session.add(notification)
        await session.flush()
    return notification


async def mark_all_read(session: AsyncSession, *, user_id: uuid.UUID, workspace_id: uuid.UUID | None) -> int:
    """Mark every unread notification of the user read (in one workspace, or in all); how many."""
    statement = (
        sql_update(Notification)
        .where(*_scope(user_id, workspace_id), col(Notification.is_read).is_(False))
        .values(is_read=True, read_at=datetime.now(UTC))
        .returning(col(Notification.id))
    )
    return len((await session.exec(statement)).all())


async def delete(session: AsyncSession, *, user_id: uuid.UUID, notification_id: uuid.UUID) -> None:
    """Delete one of the user's notifications for good."""
    notification = await get_or_raise(session, user_id=user_id, notification_id=notification_id)
    await session.delete(notification)
    await session.flush()


async def prune(session: AsyncSession, *, retention: timedelta, now: datetime | None = None) -> int:
    """Delete read notifications created more than ``retention`` ago; how many. Unread ones stay."""
    cutoff = (now or datetime.now(UTC)) - retention
    statement = (
        sql_delete(Notification)
        .where(col(Notification.is_read).is_(True), col(Notification.created_at) < cutoff)
        .returning(col(Notification.id))
    )
    return len((await session.exec(statement)).all())


async def prune_forever(database: Database, settings: NotiSettings) -> None:
    """Delete old read notifications every ``prune_interval_seconds`` (each replica; it is idempotent).

    Errors are logged and the loop goes on; only cancellation, at shutdown, ends it.
    """
    retention = timedelta(days=settings.retention_days)
    while True:
        try:
            async with database.unit_of_work() as session:
                pruned = await prune(session, retention=retention)
            if pruned:
                log.info("pruned read notifications", extra={"count": pruned})
        except Exception:
            log.exception("pruning read notifications failed")
        await asyncio.sleep(settings.prune_interval_seconds)
