"""The ``users.email_verified`` migration on real Postgres: which existing addresses it trusts.

Before it, ``PUT /api/users/{id}`` stored any typed-in address, so existing rows may hold an address
nobody proved. The migration trusts an address only when it is still the one the login wrote into the
default profile at the account's creation, and lets the owner of an untrusted address have an account.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy.engine import make_url

from devstack import StackInfo
from devstack.supervisor import REPO_ROOT
from mesh import ensure_database

MIGRATIONS = REPO_ROOT / "services" / "user" / "migrations"
# In a child process: the migrations import the user service's models, which would clash in SQLModel's
# one metadata with the board models other tests of this process have imported.
_UPGRADE = (
    "import sys; from pathlib import Path; from alembic import command; from mesh import alembic_config; "
    "command.upgrade(alembic_config(Path(sys.argv[1]), sys.argv[2]), sys.argv[3])"
)

BEFORE = "b7e3f1a9c2d4"  # the revision before e2f6a8c1d3b5 (users.email_verified)
ZERO = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def scratch(stack: StackInfo) -> Iterator[tuple[str, str]]:
    """A fresh user database on the stack's server: its SQLAlchemy URL and its libpq DSN."""
    name = f"wealist_user_migration_{uuid.uuid4().hex[:8]}"
    url = make_url(stack.database_url).set(database=name)
    alembic_url = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    ensure_database(alembic_url)
    yield alembic_url, dsn
    server = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _upgrade(url: str, revision: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _UPGRADE, str(MIGRATIONS), url, revision],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def _account(
    connection: psycopg.Connection[tuple[object, ...]], email: str, profile_email: str, *, late: bool = False
) -> str:
    """A user row and its default profile, as the login made them (``late``: the profile made after)."""
    user_id, created = str(uuid.uuid4()), datetime.now(UTC)
    connection.execute(
        "INSERT INTO users (id, email, name, provider, is_active, created_at, updated_at) "
        "VALUES (%s, %s, 'n', 'test', true, %s, %s)",
        (user_id, email, created, created),
    )
    profiled = created + timedelta(minutes=5) if late else created
    connection.execute(
        "INSERT INTO user_profiles (id, user_id, workspace_id, nick_name, email, created_at, updated_at) "
        "VALUES (%s, %s, %s, 'n', %s, %s, %s)",
        (str(uuid.uuid4()), user_id, ZERO, profile_email, profiled, profiled),
    )
    return user_id


def test_only_addresses_a_login_wrote_are_trusted_and_an_untrusted_one_frees_its_address(
    scratch: tuple[str, str],
) -> None:
    alembic_url, dsn = scratch
    _upgrade(alembic_url, BEFORE)
    with psycopg.connect(dsn, autocommit=True) as connection:
        untouched = _account(connection, "kim@example.com", "kim@example.com")
        recased = _account(connection, "Lee@Example.com", "lee@example.com")
        squatter = _account(connection, "newhire@corp.example", "squatter@example.com")
        recreated = _account(connection, "late@example.com", "late@example.com", late=True)

    _upgrade(alembic_url, "head")

    with psycopg.connect(dsn, autocommit=True) as connection:
        rows = connection.execute("SELECT id::text, email_verified FROM users").fetchall()
        verified: dict[object, object] = dict(rows)
        assert verified[untouched] is verified[recased] is True
        assert verified[squatter] is verified[recreated] is False
        assert verified["00000000-0000-0000-0000-000000000001"] is False  # the system user: no login
        # The untrusted claim does not hold the address: its owner's login can make an account ...
        now = datetime.now(UTC)
        connection.execute(
            "INSERT INTO users (id, email, email_verified, name, provider, created_at, updated_at) "
            "VALUES (%s, 'newhire@corp.example', true, 'n', 'google', %s, %s)",
            (str(uuid.uuid4()), now, now),
        )
        # ... while a trusted address stays unique.
        with pytest.raises(psycopg.errors.UniqueViolation):
            connection.execute(
                "INSERT INTO users (id, email, email_verified, name, provider, created_at, updated_at) "
                "VALUES (%s, 'KIM@example.com', true, 'n', 'google', %s, %s)",
                (str(uuid.uuid4()), now, now),
            )
