"""Alembic environment of the board service (the shared runtime does the work)."""

from mesh import run_migrations_env
from services.board.models import metadata

run_migrations_env(metadata)
