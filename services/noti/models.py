"""The notification service's table: one row per notification, owned by its target user."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, MetaData, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


class NotiTable(SQLModel, registry=registry()):
    """Base of the noti service's tables: its own registry and ``MetaData``, not SQLModel's shared one.

    Every service declares its tables apart (user and board both have ``attachments``), and importing two
    services' models in one process must not make them collide.
    """


metadata: MetaData = NotiTable.metadata

# The contract's types (§2.2). The original accepted any string; a typo there made a notification the
# web client could not render, so the list is enforced.
NOTIFICATION_TYPES: frozenset[str] = frozenset(
    {
        "TASK_ASSIGNED",
        "TASK_UNASSIGNED",
        "TASK_MENTIONED",
        "TASK_DUE_SOON",
        "TASK_OVERDUE",
        "TASK_STATUS_CHANGED",
        "COMMENT_ADDED",
        "COMMENT_MENTIONED",
        "WORKSPACE_INVITED",
        "WORKSPACE_ROLE_CHANGED",
        "WORKSPACE_REMOVED",
        "PROJECT_INVITED",
        "PROJECT_ROLE_CHANGED",
        "PROJECT_REMOVED",
        "BOARD_ASSIGNED",
        "BOARD_UNASSIGNED",
        "BOARD_PARTICIPANT_ADDED",
        "BOARD_UPDATED",
        "BOARD_STATUS_CHANGED",
        "BOARD_COMMENT_ADDED",
        "BOARD_DUE_SOON",
        "BOARD_OVERDUE",
    }
)
RESOURCE_TYPES: frozenset[str] = frozenset({"task", "comment", "workspace", "project", "board"})


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(*, nullable: bool) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable)


class Notification(NotiTable, table=True):
    """A notification for ``target_user_id``; only that user ever reads, marks or deletes it."""

    __tablename__ = "notifications"
    __table_args__ = (
        # The listing: one user's notifications in one workspace, newest first (and the unscoped one).
        Index("ix_notifications_target_workspace_created", "target_user_id", "workspace_id", "created_at"),
        Index("ix_notifications_target_created", "target_user_id", "created_at"),
        # Unread counts and the unread-only listing touch only the (few) unread rows.
        Index(
            "ix_notifications_unread",
            "target_user_id",
            "workspace_id",
            "created_at",
            postgresql_where=text("NOT is_read"),
        ),
        # Retention scans only read rows, oldest first.
        Index("ix_notifications_read_created", "created_at", postgresql_where=text("is_read")),
        # A retried create with the same key for the same target stores nothing more.
        Index(
            "uq_notifications_idempotency",
            "idempotency_key",
            "target_user_id",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    type: str = Field(max_length=50)
    actor_id: uuid.UUID
    target_user_id: uuid.UUID
    workspace_id: uuid.UUID
    resource_type: str = Field(max_length=20)
    resource_id: uuid.UUID
    resource_name: str = Field(default="", max_length=255)
    # Named "metadata" in the API; SQLAlchemy reserves the attribute name on declarative models.
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column("metadata", JSONB, nullable=False))
    is_read: bool = False
    read_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    created_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    idempotency_key: str | None = Field(default=None, max_length=128)
