"""The user service's tables (this slice: users, workspaces, profiles; the rest comes with the full API)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Index, MetaData, UniqueConstraint, func, text
from sqlmodel import Field, SQLModel

# The contract's fixed rows: the system user owns the inactive "_default" workspace under which every
# user's default profile lives (workspace id all zeros), so profiles always have a real workspace.
SYSTEM_USER_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")
DEFAULT_WORKSPACE_ID = uuid.UUID("00000000-0000-0000-0000-000000000000")

metadata: MetaData = SQLModel.metadata


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(*, nullable: bool = False) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable)


class User(SQLModel, table=True):
    """An account; soft-deleted accounts keep their row but free their e-mail for a new login."""

    __tablename__ = "users"
    __table_args__ = (
        # One active account per e-mail, compared case-insensitively; deleted rows do not count, so
        # logging in again after deleting an account works (the original failed on its plain unique).
        Index(
            "uq_users_email_active",
            func.lower(text("email")),
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
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
    name: str = Field(default="", max_length=100)
    google_id: str | None = Field(default=None, max_length=255)
    provider: str = Field(default="google", max_length=20)
    is_active: bool = True
    created_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=_now, sa_column=_timestamp())
    deleted_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


class Workspace(SQLModel, table=True):
    """A workspace; this slice needs only the default one, the full API fills in the rest."""

    __tablename__ = "workspaces"

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


class UserProfile(SQLModel, table=True):
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
