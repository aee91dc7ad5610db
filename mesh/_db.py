"""Database access: an async SQLAlchemy engine on psycopg, a unit of work per call, Alembic migrations.

Each service owns one database (``wealist_<workload>``) and its revisions (``services/<svc>/migrations/
versions``); the Alembic environment and the revision template are one copy, in ``mesh/_alembic``.
Migrations run with a synchronous psycopg connection in a worker thread, so the same environment serves
``nox -s up``, the tests and a Kubernetes migration Job.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
from alembic import command, context
from alembic.config import Config
from psycopg import sql
from sqlalchemy import MetaData, create_engine, pool
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh._tracing import trace_engine

ALEMBIC_HOME = Path(__file__).parent / "_alembic"
# Date-prefixed revision files sort in the order they were written.
FILE_TEMPLATE = "%%(year)d%%(month).2d%%(day).2d_%%(hour).2d%%(minute).2d_%%(rev)s_%%(slug)s"


class Database:
    """One service's database: the engine and the unit of work every RPC runs in."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )
        trace_engine(self.engine.sync_engine)
        self._sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """A session that commits when the block succeeds and rolls back on any exception."""
        async with self._sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def close(self) -> None:
        """Close every pooled connection (at shutdown)."""
        await self.engine.dispose()


def _libpq_url(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def ensure_database(url: str) -> None:
    """Create the service's database on its server when it does not exist yet."""
    name = make_url(url).database
    if not name:
        raise ValueError("the database URL names no database")
    with psycopg.connect(_libpq_url(url, "postgres"), autocommit=True) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if found is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def models_module(migrations: Path) -> str:
    """``services.user.models`` for ``services/user/migrations``: the tables a migrations folder is for."""
    package = migrations.resolve().parent
    parts = [package.name]
    while (package.parent / "__init__.py").is_file():
        package = package.parent
        parts.insert(0, package.name)
    return ".".join([*parts, "models"])


def alembic_config(migrations: Path, url: str) -> Config:
    """An Alembic configuration for one service's migrations folder, without an ini file.

    The environment and template are the shared ones; the revisions are the service's.
    """
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_HOME))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(migrations / "versions"))
    config.set_main_option("models", models_module(migrations))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.set_main_option("file_template", FILE_TEMPLATE)
    return config


def target_metadata(config: Config) -> MetaData:
    """The ``metadata`` of the models module the configuration names (see :func:`alembic_config`)."""
    name = config.get_main_option("models")
    if name is None:
        raise RuntimeError("the Alembic configuration names no models module")
    metadata = importlib.import_module(name).metadata
    if not isinstance(metadata, MetaData):
        raise TypeError(f"{name}.metadata is not a MetaData")
    return metadata


def upgrade_to_head(migrations: Path, url: str) -> None:
    """Create the database if needed and apply every migration (synchronous)."""
    ensure_database(url)
    command.upgrade(alembic_config(migrations, url), "head")


async def migrate(migrations: Path, url: str) -> None:
    """``upgrade_to_head`` off the event loop."""
    await asyncio.to_thread(upgrade_to_head, migrations, url)


def run_migrations_env(metadata: MetaData) -> None:
    """The body of the Alembic environment: run against the configured URL (offline: print the SQL)."""
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("sqlalchemy.url is not set")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
