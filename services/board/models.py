"""The board service's tables.

Every row of a project hangs off ``projects`` with ``ON DELETE CASCADE``, so deleting a project or a
board is one statement; the files in S3 are collected first (attachments have no foreign key: they
point at a project, a board or a comment by ``entity_type``/``entity_id``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, MetaData, UniqueConstraint, Uuid, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


class BoardTable(SQLModel, registry=registry()):
    """Base of the board service's tables: its own registry and ``MetaData``, not SQLModel's shared one.

    Every service declares its tables apart (user and board both have ``attachments``), and importing two
    services' models in one process must not make them collide.
    """


metadata: MetaData = BoardTable.metadata

ROLE_OWNER = "OWNER"
ROLE_ADMIN = "ADMIN"
ROLE_MEMBER = "MEMBER"
MANAGER_ROLES = frozenset({ROLE_OWNER, ROLE_ADMIN})

REQUEST_PENDING = "PENDING"
REQUEST_APPROVED = "APPROVED"
REQUEST_REJECTED = "REJECTED"

ENTITY_PROJECT = "PROJECT"
ENTITY_BOARD = "BOARD"
ENTITY_COMMENT = "COMMENT"
ATTACHMENT_TEMP = "TEMP"
ATTACHMENT_CONFIRMED = "CONFIRMED"

# The custom fields a board has, in the order init-settings lists them.
FIELD_TYPES = ("stage", "importance", "role")


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(*, nullable: bool = False) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable)


def _parent(table: str) -> Column[uuid.UUID]:
    return Column(Uuid(), ForeignKey(f"{table}.id", ondelete="CASCADE"), nullable=False)


class Project(BoardTable, table=True):
    """A project of a workspace; the first one of a workspace is its default."""

    __tablename__ = "projects"
    __table_args__ = (Index("ix_projects_workspace_created", "workspace_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID
    owner_id: uuid.UUID
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=500)
    start_date: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    due_date: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    is_default: bool = False
    is_public: bool = False
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class ProjectMember(BoardTable, table=True):
    """A user's role in a project: OWNER, ADMIN or MEMBER."""

    __tablename__ = "project_members"
    __table_args__ = (
        UniqueConstraint("project_id", "user_id", name="uq_project_members_project_user"),
        Index("ix_project_members_user", "user_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    project_id: uuid.UUID = Field(sa_column=_parent("projects"))
    user_id: uuid.UUID
    role_name: str = Field(max_length=20)
    joined_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class ProjectJoinRequest(BoardTable, table=True):
    """A request to join a project; one PENDING request per user and project (a partial unique index)."""

    __tablename__ = "project_join_requests"
    __table_args__ = (
        Index("ix_project_join_requests_project_status", "project_id", "status", "requested_at"),
        Index(
            "uq_project_join_requests_pending",
            "project_id",
            "user_id",
            unique=True,
            postgresql_where=text("status = 'PENDING'"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    project_id: uuid.UUID = Field(sa_column=_parent("projects"))
    user_id: uuid.UUID
    status: str = Field(default=REQUEST_PENDING, max_length=20)
    requested_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class FieldOption(BoardTable, table=True):
    """One option of a project's custom field (a stage column, an importance, a role)."""

    __tablename__ = "field_options"
    __table_args__ = (
        UniqueConstraint("project_id", "field_type", "value", name="uq_field_options_project_type_value"),
        Index("ix_field_options_project_type_order", "project_id", "field_type", "display_order"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    project_id: uuid.UUID = Field(sa_column=_parent("projects"))
    field_type: str = Field(max_length=20)
    value: str = Field(max_length=100)
    label: str = Field(max_length=200)
    color: str = Field(max_length=9)
    display_order: int = 0
    is_system_default: bool = False
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class Board(BoardTable, table=True):
    """A card of a project's kanban. ``custom_fields`` maps a field type to an option id (JSONB)."""

    __tablename__ = "boards"
    __table_args__ = (
        Index("ix_boards_project_created", "project_id", "created_at"),
        # The customFields filter: custom_fields @> '{"stage": "<option id>"}'.
        Index("ix_boards_custom_fields", "custom_fields", postgresql_using="gin"),
        Index("ix_boards_assignee", "assignee_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    project_id: uuid.UUID = Field(sa_column=_parent("projects"))
    author_id: uuid.UUID
    assignee_id: uuid.UUID | None = None
    title: str = Field(max_length=200)
    content: str = Field(default="", max_length=5000)
    custom_fields: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSONB(), nullable=False, server_default=text("'{}'::jsonb")),
    )
    start_date: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    due_date: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class Participant(BoardTable, table=True):
    """A user taking part in a board."""

    __tablename__ = "participants"
    __table_args__ = (
        UniqueConstraint("board_id", "user_id", name="uq_participants_board_user"),
        Index("ix_participants_board_created", "board_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    board_id: uuid.UUID = Field(sa_column=_parent("boards"))
    user_id: uuid.UUID
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class Comment(BoardTable, table=True):
    """A comment on a board."""

    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_board_created", "board_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    board_id: uuid.UUID = Field(sa_column=_parent("boards"))
    user_id: uuid.UUID
    content: str = Field(max_length=10000)
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class Attachment(BoardTable, table=True):
    """A file in S3: TEMP until a project, board or comment confirms it, then CONFIRMED.

    ``project_id`` is the project the file belongs to once confirmed (for a board's or a comment's file
    too), so deleting a project finds every object of it in one query.
    """

    __tablename__ = "attachments"
    __table_args__ = (
        Index("ix_attachments_entity", "entity_type", "entity_id", "created_at"),
        Index("ix_attachments_project", "project_id"),
        # One row per object: the web client registers the key it uploaded to a second time.
        Index("uq_attachments_file_key", "file_key", unique=True),
        # What the clean-up reads: temporary rows by expiry.
        Index("ix_attachments_temp_expiry", "expires_at", postgresql_where=text("status = 'TEMP'")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    entity_type: str = Field(max_length=20)
    entity_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    workspace_id: uuid.UUID
    status: str = Field(default=ATTACHMENT_TEMP, max_length=20)
    file_key: str = Field(max_length=1024)
    file_name: str = Field(max_length=255)
    file_size: int = Field(sa_column=Column(BigInteger(), nullable=False))
    content_type: str = Field(max_length=100)
    uploaded_by: uuid.UUID
    expires_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class Outbox(BoardTable, table=True):
    """Side effects of a committed change not yet delivered: notifications to noti.

    Written in the change's transaction and delivered after the commit (retried until noti takes them,
    idempotently by ``key``), so a notification is never lost when noti is briefly down and never sent
    for a change that rolled back.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_created", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    key: str = Field(max_length=128, unique=True)
    kind: str = Field(max_length=40)
    payload: dict[str, Any] = Field(sa_column=Column(JSONB(), nullable=False))
    attempts: int = 0
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
