"""The user service's tables: users, workspaces, memberships, join requests, profiles, attachments."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Index, MetaData, UniqueConstraint, func, text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

# The contract's fixed rows: the system user owns the inactive "_default" workspace under which every
# user's default profile lives (workspace id all zeros), so profiles always have a real workspace.
SYSTEM_USER_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")
DEFAULT_WORKSPACE_ID = uuid.UUID("00000000-0000-0000-0000-000000000000")


class UserTable(SQLModel, registry=registry()):
    """Base of the user service's tables: its own registry and ``MetaData``, not SQLModel's shared one.

    Every service declares its tables apart (user and board both have ``attachments``), and importing two
    services' models in one process must not make them collide.
    """


metadata: MetaData = UserTable.metadata


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(*, nullable: bool = False) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable)


class User(UserTable, table=True):
    """An account; soft-deleted accounts keep their row but free their e-mail for a new login.

    ``email_verified``: a login provider vouched for the address when the account was made (Google with
    ``email_verified``, or the dev/test login, which is trusted by configuration). Only a verified address
    links a later login or an invitation to the account; unverified ones (from before e-mail changes were
    refused) are kept for display only.
    """

    __tablename__ = "users"
    __table_args__ = (
        # One active account per verified e-mail, compared case-insensitively; deleted rows do not count,
        # so logging in again after deleting an account works (the original failed on its plain unique),
        # and an unverified claim on an address does not keep its real owner from an account.
        Index(
            "uq_users_email_verified",
            func.lower(text("email")),
            unique=True,
            postgresql_where=text("deleted_at IS NULL AND email_verified"),
        ),
        Index(
            "uq_users_google_id_active",
            "google_id",
            unique=True,
            postgresql_where=text("deleted_at IS NULL AND google_id IS NOT NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(max_length=320)
    email_verified: bool = False
    name: str = Field(default="", max_length=100)
    google_id: str | None = Field(default=None, max_length=255)
    provider: str = Field(default="google", max_length=20)
    is_active: bool = True
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    deleted_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


class Workspace(UserTable, table=True):
    """A workspace; soft-deleted ones (``deleted_at`` set) are gone for every reader."""

    __tablename__ = "workspaces"
    __table_args__ = (
        # The public search scans only live public workspaces, newest first.
        Index(
            "ix_workspaces_public_live",
            "created_at",
            postgresql_where=text("is_public AND deleted_at IS NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    workspace_name: str = Field(max_length=100)
    workspace_description: str | None = Field(default=None, max_length=1000)
    is_public: bool = True
    need_approved: bool = True
    only_owner_can_invite: bool = True
    is_active: bool = True
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    deleted_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


class UserProfile(UserTable, table=True):
    """A user's nickname and picture in one workspace (the default profile: workspace all zeros)."""

    __tablename__ = "user_profiles"
    __table_args__ = (UniqueConstraint("user_id", "workspace_id", name="uq_user_profiles_user_workspace"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id", index=True)
    nick_name: str = Field(max_length=100)
    email: str = Field(max_length=320)
    profile_image_url: str | None = Field(default=None, max_length=2048)
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


# Workspace roles, stored as the contract's strings.
ROLE_OWNER = "OWNER"
ROLE_ADMIN = "ADMIN"
ROLE_MEMBER = "MEMBER"

# Join request states; a request leaves PENDING exactly once.
REQUEST_PENDING = "PENDING"
REQUEST_APPROVED = "APPROVED"
REQUEST_REJECTED = "REJECTED"


class WorkspaceMember(UserTable, table=True):
    """A user's membership of a workspace; removal deactivates the row, re-joining inserts a new one."""

    __tablename__ = "workspace_members"
    __table_args__ = (
        # One active membership per (workspace, user); the original had no such constraint.
        Index(
            "uq_workspace_members_active",
            "workspace_id",
            "user_id",
            unique=True,
            postgresql_where=text("is_active"),
        ),
        # "My workspaces" and the internal membership checks by user.
        Index("ix_workspace_members_user_active", "user_id", postgresql_where=text("is_active")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id")
    user_id: uuid.UUID = Field(foreign_key="users.id")
    role_name: str = Field(default=ROLE_MEMBER, max_length=20)
    is_default: bool = False
    is_active: bool = True
    joined_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


class WorkspaceJoinRequest(UserTable, table=True):
    """A request to join a workspace; auto-approved ones are stored too, with status APPROVED."""

    __tablename__ = "workspace_join_requests"
    __table_args__ = (
        # One PENDING request per (workspace, user): a second one is a 409, race or not.
        Index(
            "uq_workspace_join_requests_pending",
            "workspace_id",
            "user_id",
            unique=True,
            postgresql_where=text("status = 'PENDING'"),
        ),
        Index("ix_workspace_join_requests_workspace_status", "workspace_id", "status", "requested_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id")
    user_id: uuid.UUID = Field(foreign_key="users.id")
    status: str = Field(default=REQUEST_PENDING, max_length=20)
    requested_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())


ATTACHMENT_TEMP = "TEMP"
ATTACHMENT_CONFIRMED = "CONFIRMED"
ENTITY_USER_PROFILE = "USER_PROFILE"


class Attachment(UserTable, table=True):
    """An uploaded profile picture: TEMP until a profile uses it (a cleanup may drop expired TEMP rows)."""

    __tablename__ = "attachments"
    __table_args__ = (
        Index("ix_attachments_uploaded_by", "uploaded_by"),
        Index("ix_attachments_entity", "entity_type", "entity_id"),
        # What an expiry sweep reads: temporary rows by expiry.
        Index("ix_attachments_temp_expiry", "expires_at", postgresql_where=text("status = 'TEMP'")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    entity_type: str = Field(default=ENTITY_USER_PROFILE, max_length=50)
    entity_id: uuid.UUID | None = None
    status: str = Field(default=ATTACHMENT_TEMP, max_length=20)
    file_key: str = Field(max_length=1024)
    file_name: str = Field(max_length=255)
    file_url: str = Field(max_length=2048)
    file_size: int
    content_type: str = Field(max_length=100)
    uploaded_by: uuid.UUID = Field(foreign_key="users.id")
    expires_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    deleted_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
