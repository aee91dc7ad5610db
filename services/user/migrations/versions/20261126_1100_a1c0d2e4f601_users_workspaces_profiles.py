"""users, workspaces and profiles, with the system user and the default workspace

Revision ID: a1c0d2e4f601
Revises:
Create Date: 2026-11-26 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1c0d2e4f601"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYSTEM_USER_ID = "00000000-0000-0000-0000-000000000001"
DEFAULT_WORKSPACE_ID = "00000000-0000-0000-0000-000000000000"


def _timestamps(*, deleted: bool) -> list[sa.Column[object]]:
    columns: list[sa.Column[object]] = [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]
    if deleted:
        columns.append(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    return columns


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(100), nullable=False, server_default=""),
        sa.Column("google_id", sa.String(255), nullable=True),
        sa.Column("provider", sa.String(20), nullable=False, server_default="google"),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
        *_timestamps(deleted=True),
    )
    op.create_index(
        "uq_users_email_active",
        "users",
        [sa.text("lower(email)")],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "uq_users_google_id_active",
        "users",
        ["google_id"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL AND google_id IS NOT NULL"),
    )
    op.create_table(
        "workspaces",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("owner_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("workspace_name", sa.String(100), nullable=False),
        sa.Column("workspace_description", sa.String(1000), nullable=True),
        sa.Column("is_public", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("need_approved", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("only_owner_can_invite", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
        *_timestamps(deleted=True),
    )
    op.create_index("ix_workspaces_owner_id", "workspaces", ["owner_id"])
    op.create_table(
        "user_profiles",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("nick_name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("profile_image_url", sa.String(2048), nullable=True),
        *_timestamps(deleted=False),
        sa.UniqueConstraint("user_id", "workspace_id", name="uq_user_profiles_user_workspace"),
    )
    op.create_index("ix_user_profiles_user_id", "user_profiles", ["user_id"])
    op.create_index("ix_user_profiles_workspace_id", "user_profiles", ["workspace_id"])
    op.execute(
        sa.text(
            "INSERT INTO users (id, email, name, provider, is_active) "
            "VALUES (CAST(:id AS uuid), 'system@wealist.internal', 'system', 'system', true)"
        ).bindparams(id=SYSTEM_USER_ID)
    )
    op.execute(
        sa.text(
            "INSERT INTO workspaces (id, owner_id, workspace_name, is_public, need_approved, "
            "only_owner_can_invite, is_active) "
            "VALUES (CAST(:id AS uuid), CAST(:owner AS uuid), '_default', false, false, true, false)"
        ).bindparams(id=DEFAULT_WORKSPACE_ID, owner=SYSTEM_USER_ID)
    )


def downgrade() -> None:
    op.drop_table("user_profiles")
    op.drop_table("workspaces")
    op.drop_table("users")
