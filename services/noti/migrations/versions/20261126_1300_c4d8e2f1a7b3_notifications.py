"""notifications, with the listing, unread, retention and idempotency indexes

Revision ID: c4d8e2f1a7b3
Revises:
Create Date: 2026-11-26 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c4d8e2f1a7b3"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("type", sa.String(50), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=False),
        sa.Column("target_user_id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("resource_type", sa.String(20), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("resource_name", sa.String(255), nullable=False, server_default=""),
        sa.Column("metadata", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("is_read", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("idempotency_key", sa.String(128), nullable=True),
    )
    op.create_index(
        "ix_notifications_target_workspace_created",
        "notifications",
        ["target_user_id", "workspace_id", "created_at"],
    )
    op.create_index("ix_notifications_target_created", "notifications", ["target_user_id", "created_at"])
    op.create_index(
        "ix_notifications_unread",
        "notifications",
        ["target_user_id", "workspace_id", "created_at"],
        postgresql_where=sa.text("NOT is_read"),
    )
    op.create_index(
        "ix_notifications_read_created",
        "notifications",
        ["created_at"],
        postgresql_where=sa.text("is_read"),
    )
    op.create_index(
        "uq_notifications_idempotency",
        "notifications",
        ["idempotency_key", "target_user_id"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("notifications")
