"""The life cycle every infrastructure server of the dev stack shares (Postgres, Redis, S3).

A server is either *embedded* (a child process we start, with its files under ``<state>/<name>/``) or
*external* (a URL from the environment: we start nothing and only check it, creating what we need on it).
Starting is split in two so the stack can launch all three at once and then wait for each:
:meth:`ManagedServer.spawn` returns as soon as the process exists, :meth:`ManagedServer.wait_ready`
blocks until it answers.
"""

from __future__ import annotations

import abc
import datetime as dt
import logging
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Self

from devstack._process import (
    DirLock,
    StartupError,
    ensure_port_free,
    log_suffix,
    spawn,
    stop_process,
    wait_until,
)

__all__ = ["ManagedServer"]

logger = logging.getLogger("devstack")


class ManagedServer(abc.ABC):
    """Base of the embedded-or-external servers; subclasses say how to launch, probe and prepare."""

    #: Folder and log name under the state folder, and the name used in messages.
    name: ClassVar[str]
    #: How the child is asked to stop: the first signal, then ``(signal, wait)`` escalations.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    stop_escalation: ClassVar[Sequence[tuple[signal.Signals, float]]] = ()
    #: Seconds the first stop signal is given before escalating.
    stop_timeout: ClassVar[float] = 10.0
    #: Whether the stop signals go to the whole process group (see ``stop_process``).
    signal_group: ClassVar[bool] = True
    #: What the kernel sends the child if the dev stack dies without stopping it.
    death_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(
        self, state_dir: Path, *, port: int, external_url: str | None, startup_timeout: float
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.port = port
        self.external_url = external_url or None
        self.startup_timeout = startup_timeout
        self.dir = self.state_dir / self.name
        self.log_path = self.dir / f"{self.name}.log"
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = DirLock(self.dir / ".lock", what=f"embedded {self.name}")
        self._spawned_at = 0.0
        self._ready = False

    # -- what subclasses provide -------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """Where clients connect: the embedded server's URL, or the external one."""

    @abc.abstractmethod
    def _argv(self) -> list[str]:
        """The command line of the embedded server."""

    @abc.abstractmethod
    def _probe(self) -> bool:
        """One readiness check of the embedded server; False (not an exception) while it is coming up."""

    @abc.abstractmethod
    def _provision(self) -> None:
        """Create what the platform needs on a ready server (databases, bucket); must be idempotent."""

    def _prepare(self) -> None:  # noqa: B027 -- optional hook, deliberately empty by default
        """Get the state folder ready before the first launch (initdb and the like)."""

    def _env(self) -> Mapping[str, str] | None:
        """Environment of the child; None inherits ours."""
        return None

    def _user(self) -> str | None:
        """Account to run the child as; None keeps ours."""
        return None

    # -- life cycle -------------------------------------------------------------------------------------

    @property
    def embedded(self) -> bool:
        """True when this object runs the server itself, False when it only uses an external one."""
        return self.external_url is None

    @property
    def pid(self) -> int | None:
        """Process id of the embedded server while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def spawn(self) -> None:
        """Launch the embedded server without waiting for it (no-op when external or already running)."""
        if not self.embedded or self._proc is not None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            # Prepare first: it may stop a leftover server of ours that still holds the port.
            self._prepare()
            ensure_port_free(self.port, f"embedded {self.name}")
            # Appending keeps the history across restarts; the banner marks where this run begins.
            self._log = self.log_path.open("ab")
            self._log.write(f"\n---- devstack: starting {self.name} at {dt.datetime.now():%c}\n".encode())
            self._log.flush()
            self._spawned_at = time.monotonic()
            self._proc = spawn(
                self._argv(),
                env=self._env(),
                cwd=self.dir,
                stdout=self._log,
                user=self._user(),
                death_signal=self.death_signal,
            )
        except BaseException:
            self.stop()
            raise

    def wait_ready(self) -> None:
        """Block until the server answers, then provision it; raises :class:`StartupError` on failure."""
        if self._ready:
            return
        try:
            if self.embedded:
                self.spawn()
                wait_until(
                    self._probe,
                    what=f"embedded {self.name}",
                    timeout=self.startup_timeout,
                    proc=self._proc,
                    log_path=self.log_path,
                )
                self.startup_seconds = time.monotonic() - self._spawned_at
            self._provision()
        except BaseException:
            self.stop()
            raise
        self._ready = True

    def start(self) -> Self:
        """Spawn and wait: the server is ready (and provisioned) when this returns."""
        self.spawn()
        self.wait_ready()
        return self

    def stop(self) -> None:
        """Stop the embedded server and release its state folder (idempotent; no-op when external)."""
        self._ready = False
        proc, self._proc = self._proc, None
        try:
            if proc is not None:
                code = stop_process(
                    proc,
                    first=self.stop_signal,
                    timeout=self.stop_timeout,
                    then=self.stop_escalation,
                    group=self.signal_group,
                )
                logger.debug("%s stopped (exit code %s)", self.name, code)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
            self._lock.release()

    def require_running(self) -> None:
        """Raise :class:`StartupError` if the embedded server has died since it started."""
        if self._proc is not None and self._proc.poll() is not None:
            raise StartupError(
                f"embedded {self.name} exited with code {self._proc.returncode}" + log_suffix(self.log_path)
            )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
