"""The Alembic environment of every service: its own tables (``<package>.models``), migrated online.

``mesh.alembic_config`` points Alembic here and at the service's ``migrations/versions``, so the services
keep only their revisions; this file and ``script.py.mako`` beside it are the one template.
"""

from alembic import context

from mesh._db import run_migrations_env, target_metadata

run_migrations_env(target_metadata(context.config))
