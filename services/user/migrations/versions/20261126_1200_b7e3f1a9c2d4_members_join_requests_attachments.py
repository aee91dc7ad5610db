"""workspace members, join requests and attachments, with the indexes every listing reads

Revision ID: b7e3f1a9c2d4
Revises: a1c0d2e4f601
Create Date: 2026-11-26 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7e3f1a9c2d4"
down_revision: str | None = "a1c0d2e4f601"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.Column[object]:
    return sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_index(
        "ix_workspaces_public_live",
        "workspaces",
        ["created_at"],
        postgresql_where=sa.text("is_public AND deleted_at IS NULL"),
    )
    op.create_table(
        "workspace_members",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("workspace_id", sa.Uuid(), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("role_name", sa.String(20), nullable=False, server_default="MEMBER"),
        sa.Column("is_default", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        _now(),
        sa.CheckConstraint("role_name IN ('OWNER', 'ADMIN', 'MEMBER')", name="ck_workspace_members_role"),
    )
    # One active membership per (workspace, user); it also serves the member listing by workspace.
    op.create_index(
        "uq_workspace_members_active",
        "workspace_members",
        ["workspace_id", "user_id"],
        unique=True,
        postgresql_where=sa.text("is_active"),
    )
    op.create_index(
        "ix_workspace_members_user_active",
        "workspace_members",
        ["user_id"],
        postgresql_where=sa.text("is_active"),
    )
    op.create_table(
        "workspace_join_requests",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("workspace_id", sa.Uuid(), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="PENDING"),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        _now(),
        sa.CheckConstraint(
            "status IN ('PENDING', 'APPROVED', 'REJECTED')", name="ck_workspace_join_requests_status"
        ),
    )
    op.create_index(
        "uq_workspace_join_requests_pending",
        "workspace_join_requests",
        ["workspace_id", "user_id"],
        unique=True,
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_index(
        "ix_workspace_join_requests_workspace_status",
        "workspace_join_requests",
        ["workspace_id", "status", "requested_at"],
    )
    op.create_table(
        "attachments",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("entity_type", sa.String(50), nullable=False, server_default="USER_PROFILE"),
        sa.Column("entity_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False, server_default="TEMP"),
        sa.Column("file_key", sa.String(1024), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("file_url", sa.String(2048), nullable=False),
        sa.Column("file_size", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("uploaded_by", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        _now(),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_attachments_uploaded_by", "attachments", ["uploaded_by"])
    op.create_index("ix_attachments_entity", "attachments", ["entity_type", "entity_id"])
    op.create_index(
        "ix_attachments_temp_expiry",
        "attachments",
        ["expires_at"],
        postgresql_where=sa.text("status = 'TEMP'"),
    )


def downgrade() -> None:
    op.drop_table("attachments")
    op.drop_table("workspace_join_requests")
    op.drop_table("workspace_members")
    op.drop_index("ix_workspaces_public_live", table_name="workspaces")
