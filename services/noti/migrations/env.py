"""Alembic environment of the notification service (the shared runtime does the work)."""

from mesh import run_migrations_env
from services.noti.models import metadata

run_migrations_env(metadata)
