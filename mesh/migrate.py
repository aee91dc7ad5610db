"""``python -m mesh.migrate <workload>``: apply a service's migrations to its database and exit.

What a Kubernetes migration Job runs (services there start with ``WEALIST_MIGRATE_ON_START=false``);
the database server comes from ``DATABASE_URL`` as for the service itself.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from mesh._db import upgrade_to_head
from mesh._logging import configure_logging
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
    settings = MeshSettings(workload=workload)
    configure_logging(f"{workload}-migrate", level=settings.log_level, json_lines=settings.log_json)
    upgrade_to_head(migrations_of(workload), settings.service_database_url())


if __name__ == "__main__":
    main()
