"""projects, members, join requests, field options, boards, participants, comments, attachments, outbox

Revision ID: d5e9f3a2b8c4
Revises:
Create Date: 2026-11-26 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d5e9f3a2b8c4"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _stamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _parent(name: str, table: str) -> sa.Column[object]:
    return sa.Column(name, sa.Uuid(), sa.ForeignKey(f"{table}.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.String(500), nullable=False, server_default=""),
        _stamp("start_date", nullable=True),
        _stamp("due_date", nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("is_public", sa.Boolean(), nullable=False, server_default=sa.false()),
        _stamp("created_at"),
        _stamp("updated_at"),
    )
    op.create_index("ix_projects_workspace_created", "projects", ["workspace_id", "created_at"])
    op.create_table(
        "project_members",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _parent("project_id", "projects"),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role_name", sa.String(20), nullable=False),
        _stamp("joined_at"),
        sa.UniqueConstraint("project_id", "user_id", name="uq_project_members_project_user"),
    )
    op.create_index("ix_project_members_user", "project_members", ["user_id"])
    op.create_table(
        "project_join_requests",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _parent("project_id", "projects"),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        _stamp("requested_at"),
        _stamp("updated_at"),
    )
    op.create_index(
        "ix_project_join_requests_project_status",
        "project_join_requests",
        ["project_id", "status", "requested_at"],
    )
    op.create_index(
        "uq_project_join_requests_pending",
        "project_join_requests",
        ["project_id", "user_id"],
        unique=True,
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_table(
        "field_options",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _parent("project_id", "projects"),
        sa.Column("field_type", sa.String(20), nullable=False),
        sa.Column("value", sa.String(100), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("color", sa.String(9), nullable=False),
        sa.Column("display_order", sa.Integer(), nullable=False),
        sa.Column("is_system_default", sa.Boolean(), nullable=False, server_default=sa.false()),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.UniqueConstraint("project_id", "field_type", "value", name="uq_field_options_project_type_value"),
    )
    op.create_index(
        "ix_field_options_project_type_order",
        "field_options",
        ["project_id", "field_type", "display_order"],
    )
    op.create_table(
        "boards",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _parent("project_id", "projects"),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("assignee_id", sa.Uuid(), nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("content", sa.String(5000), nullable=False, server_default=""),
        sa.Column("custom_fields", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        _stamp("start_date", nullable=True),
        _stamp("due_date", nullable=True),
        _stamp("created_at"),
        _stamp("updated_at"),
    )
    op.create_index("ix_boards_project_created", "boards", ["project_id", "created_at"])
    op.create_index("ix_boards_custom_fields", "boards", ["custom_fields"], postgresql_using="gin")
    op.create_index("ix_boards_assignee", "boards", ["assignee_id"])
    op.create_table(
        "participants",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _parent("board_id", "boards"),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        _stamp("created_at"),
        sa.UniqueConstraint("board_id", "user_id", name="uq_participants_board_user"),
    )
    op.create_index("ix_participants_board_created", "participants", ["board_id", "created_at"])
    op.create_table(
        "comments",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _parent("board_id", "boards"),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("content", sa.String(10000), nullable=False),
        _stamp("created_at"),
        _stamp("updated_at"),
    )
    op.create_index("ix_comments_board_created", "comments", ["board_id", "created_at"])
    op.create_table(
        "attachments",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("entity_type", sa.String(20), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=True),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("file_key", sa.String(1024), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("uploaded_by", sa.Uuid(), nullable=False),
        _stamp("expires_at", nullable=True),
        _stamp("created_at"),
        _stamp("updated_at"),
    )
    op.create_index("ix_attachments_entity", "attachments", ["entity_type", "entity_id", "created_at"])
    op.create_index("ix_attachments_project", "attachments", ["project_id"])
    op.create_index("uq_attachments_file_key", "attachments", ["file_key"], unique=True)
    op.create_index(
        "ix_attachments_temp_expiry",
        "attachments",
        ["expires_at"],
        postgresql_where=sa.text("status = 'TEMP'"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("key", sa.String(128), nullable=False, unique=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        _stamp("created_at"),
    )
    op.create_index("ix_outbox_created", "outbox", ["created_at"])


def downgrade() -> None:
    for table in (
        "outbox",
        "attachments",
        "comments",
        "participants",
        "boards",
        "field_options",
        "project_join_requests",
        "project_members",
        "projects",
    ):
        op.drop_table(table)
