"""The running mesh the integration tests talk to: one stack per test session, real processes.

Postgres, Redis and the S3 server are embedded (or the servers ``DATABASE_URL``, ``REDIS_URL`` and
``S3_ENDPOINT`` name); the services run as child processes with mTLS, exactly as ``nox -s up`` runs them.
Their output goes to ``<state>/services.log`` so a failing test can be read against it.
"""

from __future__ import annotations

import os

# Before grpc loads: this process talks gRPC on several threads and also starts processes with a
# preexec_fn (devstack/_process.py), so fork() runs grpc's at-fork handlers in the child, which can
# abort it before it reaches exec (seen: "Epoll1Poller ... epoll_wait error: Bad file descriptor",
# SIGABRT). Every child execs a new program at once, so grpc has nothing to carry across a fork.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import redis.asyncio

from devstack import StackInfo, free_port, pick_port_offset, run_stack, start_redis
from tests.support import STACK_ENV, FakeClock, Mesh, append_line

# Every run gets a folder of its own under here unless --basetemp names one. pytest's default keeps only
# its three newest folders, so a fourth run started beside three others would delete a live stack's state.
RUNS_DIR = Path(tempfile.gettempdir()) / "wealist-tests"
KEEP_FINISHED_RUNS = 3


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prune_finished_runs() -> None:
    """Remove the folders of runs whose process is gone, keeping the newest few to read after a failure."""
    finished = []
    for run in RUNS_DIR.glob("run-*"):
        pid = run.name.removeprefix("run-")
        if pid.isdigit() and not _alive(int(pid)):
            finished.append(run)
    finished.sort(key=lambda run: run.stat().st_mtime, reverse=True)
    for run in finished[KEEP_FINISHED_RUNS:]:
        shutil.rmtree(run, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Give this run its own temporary folder, so that runs side by side never share or delete one."""
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        RUNS_DIR.mkdir(exist_ok=True)
        _prune_finished_runs()
        config.option.basetemp = str(RUNS_DIR / f"run-{os.getpid()}")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of its own for tests that need only Redis: ``REDIS_URL`` if set, else an embedded one."""
    server = start_redis(
        tmp_path_factory.mktemp("redis"), port=free_port(), external_url=os.environ.get("REDIS_URL")
    )
    try:
        yield server.url
    finally:
        server.stop()


@pytest_asyncio.fixture
async def rds(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A client of the test Redis, closed after the test."""
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand."""
    return FakeClock()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """The whole platform, started once for the session."""
    state = tmp_path_factory.mktemp("stack")
    log_path = state / "services.log"
    with (
        log_path.open("a", encoding="utf-8") as log,
        run_stack(
            state,
            pick_port_offset(),
            STACK_ENV,
            environ=os.environ,
            output=lambda line: append_line(log, line),
        ) as info,
    ):
        yield info


@pytest_asyncio.fixture(scope="session")
async def mesh(stack: StackInfo) -> AsyncIterator[Mesh]:
    """Channels to the running services (closed at the end of the session)."""
    clients = Mesh(stack)
    yield clients
    await clients.close()


@pytest_asyncio.fixture
async def client(stack: StackInfo) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the stack's real gateway process, the one door the web client uses."""
    async with httpx.AsyncClient(base_url=stack.services["gateway"].http_base, timeout=15) as http:
        yield http
