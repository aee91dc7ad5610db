"""``python -m mesh.migrate <workload>``: apply a service's migrations to its database and exit.

What a Kubernetes migration Job runs (services there start with ``WEALIST_MIGRATE_ON_START=false``);
the database server comes from ``DATABASE_URL`` as for the service itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

from mesh._db import upgrade_to_head
from mesh._logging import configure_logging
from mesh._production import variable_of
from mesh._settings import MeshSettings


def migrations_of(workload: str) -> Path:
    """The Alembic folder of ``services/<workload>``."""
    spec = importlib.util.find_spec(f"services.{workload}")
    if spec is None or spec.origin is None:
        raise SystemExit(f"no service named {workload!r}")
    folder = Path(spec.origin).parent / "migrations"
    if not folder.is_dir():
        raise SystemExit(f"service {workload!r} has no migrations")
    return folder


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workload", help="the service whose database to migrate (user, board, ...)")
    workload = parser.parse_args().workload
    # The Job has only DATABASE_URL (tools/manifests.py): the other production checks are for workloads
    # that serve, so they are left out here, and the one setting it needs is checked by itself.
    environment = os.environ.get(variable_of("environment", MeshSettings.model_fields["environment"]))
    if environment == "production" and "DATABASE_URL" not in os.environ:
        raise SystemExit(f"{workload}-migrate: refusing to run in production: DATABASE_URL is not set")
    settings = MeshSettings(workload=workload, environment="dev")
    configure_logging(f"{workload}-migrate", level=settings.log_level, json_lines=settings.log_json)
    upgrade_to_head(migrations_of(workload), settings.service_database_url())


if __name__ == "__main__":
    main()
