"""users.email_verified: only an address a login proved links a login or an invitation to an account

Revision ID: e2f6a8c1d3b5
Revises: b7e3f1a9c2d4
Create Date: 2026-11-27 09:00:00

Until now ``PUT /api/users/{id}`` stored any address the caller typed, and logins and invitations matched
on e-mail alone, so an account could claim someone else's address before its owner first logged in. An
address is verified when a login provider vouched for it as the account was created. For existing rows
that is read off the default profile: the login wrote it with its address in the same transaction and
with the same timestamp as the account, and an e-mail change never touched it, so an account whose address
still equals that profile's, created at the same instant, has its login's address. Every other
row keeps its address for display but no longer holds it: the unique index covers verified addresses
only, so the address's real owner can log in and get an account of their own.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e2f6a8c1d3b5"
down_revision: str | None = "b7e3f1a9c2d4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_WORKSPACE_ID = "00000000-0000-0000-0000-000000000000"


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("email_verified", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.execute(
        sa.text(
            "UPDATE users SET email_verified = true FROM user_profiles AS p "
            "WHERE p.user_id = users.id AND p.workspace_id = CAST(:zero AS uuid) "
            "AND lower(p.email) = lower(users.email) AND p.created_at = users.created_at"
        ).bindparams(zero=DEFAULT_WORKSPACE_ID)
    )
    op.drop_index("uq_users_email_active", table_name="users")
    op.create_index(
        "uq_users_email_verified",
        "users",
        [sa.text("lower(email)")],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL AND email_verified"),
    )


def downgrade() -> None:
    # Fails when an unverified account shares an address with a verified one: resolve those first.
    op.drop_index("uq_users_email_verified", table_name="users")
    op.create_index(
        "uq_users_email_active",
        "users",
        [sa.text("lower(email)")],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_column("users", "email_verified")
