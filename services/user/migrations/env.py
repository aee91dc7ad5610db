"""Alembic environment of the user service (the shared runtime does the work)."""

from mesh import run_migrations_env
from services.user.models import metadata

run_migrations_env(metadata)
