"""Child-process plumbing shared by the infrastructure servers and the service supervisor.

Everything the dev stack runs is a real child process. Three rules keep them from outliving us:

* every child starts in its own session, so a Ctrl-C in the terminal reaches only the dev stack, which
  then stops the children in a fixed order (services before the databases they write to);
* on Linux every child also asks the kernel for a signal when its parent dies (``PR_SET_PDEATHSIG``), so
  even a ``kill -9`` of the dev stack (or nox giving up on a slow shutdown) leaves no orphans;
* stopping escalates: a polite signal, a bounded wait, then ``SIGKILL``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = [
    "DevstackError",
    "DirLock",
    "StartupError",
    "account",
    "ensure_port_free",
    "free_port",
    "log_suffix",
    "port_is_free",
    "signal_group",
    "spawn",
    "stop_process",
    "tail_file",
    "wait_until",
]

logger = logging.getLogger("devstack")

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class DevstackError(RuntimeError):
    """Base class of everything the dev stack raises on purpose."""


class StartupError(DevstackError):
    """A server or service did not come up; the message carries the tail of its log."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether a server could bind ``127.0.0.1:port`` now.

    ``SO_REUSEADDR`` is set as the real servers set it, so sockets lingering in TIME_WAIT from a stack
    that just stopped do not count as taken; a live listener (on 127.0.0.1 or 0.0.0.0) does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def ensure_port_free(port: int, what: str) -> None:
    """Fail early, naming the server, when ``port`` is taken: far clearer than the server's own error."""
    if not port_is_free(port):
        raise StartupError(
            f"{what}: port 127.0.0.1:{port} is already in use (another dev stack? a system server?). "
            "Choose another port or --port-offset."
        )


def tail_file(path: Path, lines: int = 40) -> list[str]:
    """The last ``lines`` lines of a log file (empty when it does not exist)."""
    try:
        with path.open("rb") as fh:
            # Logs can grow large across restarts; the tail is all an error report needs.
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except FileNotFoundError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]


def _pdeathsig_preexec(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to send ``sig`` to the child when the parent dies.

    The kernel ties the parent-death signal to the *thread* that forked the child, so it is only used
    when spawning from the main thread: a child spawned from a worker thread would be killed the moment
    that thread finished. It runs after ``subprocess`` has switched user, because a change of
    credentials clears the setting.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig))
        # The parent may have died between fork() and prctl(); then no signal will ever come.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def account(user: str | None) -> tuple[int | None, int | None, list[int] | None]:
    """``(uid, gid, extra_groups)`` for ``subprocess`` to run as ``user`` (all None: stay who we are).

    The primary group is switched along with the user and root's supplementary groups are dropped;
    ``subprocess`` changes only the uid unless told otherwise.
    """
    if user is None:
        return None, None, None
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid, []


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdout: IO[bytes] | int | None = None,
    user: str | None = None,
    death_signal: signal.Signals = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start a child process in its own session that is signalled when we die (see module docstring).

    ``stdout`` receives both output streams; ``user`` switches to that account (and its primary group,
    dropping root's supplementary groups).
    """
    uid, gid, groups = account(user)
    return subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        user=uid,
        group=gid,
        extra_groups=groups,
        start_new_session=True,
        # Safe despite other threads: the function only calls prctl(2) (see _pdeathsig_preexec).
        preexec_fn=_pdeathsig_preexec(death_signal),  # noqa: PLW1509
    )


def signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to the child's process group; quiet when it is already gone."""
    # The child leads its own process group (start_new_session), so signalling the group also reaches
    # anything it forked (uvicorn workers, a reloader) and leaves no grandchildren behind.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_process(
    proc: subprocess.Popen[bytes],
    *,
    first: signal.Signals | None = signal.SIGTERM,
    timeout: float = 10.0,
    then: Sequence[tuple[signal.Signals | None, float]] = (),
    group: bool = True,
) -> int:
    """Stop a child: send ``first``, wait ``timeout`` s, try each ``(signal, wait)`` of ``then``, then kill.

    ``first=None`` only waits, for a child that was already signalled (a second SIGTERM makes some
    servers, uvicorn among them, skip their graceful shutdown).

    The polite signals go to the child's whole process group when ``group`` is true, or to the child
    alone (Postgres: only the postmaster may be signalled, its backends read SIGINT as "cancel query").
    The final SIGKILL always sweeps the group so no grandchild survives. Returns the exit code
    (negative signal number when a signal ended it).
    """
    if proc.poll() is None:
        for sig, wait in ((first, timeout), *then):
            if sig is None:
                pass
            elif group:
                signal_group(proc, sig)
            else:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
                break
        else:
            signal_group(proc, signal.SIGKILL)
            proc.wait()
    # The leader is gone but members of its group may live on; one last sweep.
    signal_group(proc, signal.SIGKILL)
    return proc.returncode


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
    interval: float = 0.05,
) -> None:
    """Poll ``ready()`` until it returns True; fail fast if ``proc`` exits, or after ``timeout`` seconds.

    ``ready`` must swallow its own expected errors (connection refused and the like) and return False.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise StartupError(
                f"{what} exited with code {proc.returncode} before it was ready" + log_suffix(log_path)
            )
        if ready():
            return
        if time.monotonic() >= deadline:
            raise StartupError(f"{what} was not ready after {timeout:.0f} s" + log_suffix(log_path))
        time.sleep(interval)


def log_suffix(log_path: Path | None) -> str:
    """``"; last lines of <log>: ..."`` for an error message, or nothing without a log."""
    if log_path is None:
        return ""
    lines = tail_file(log_path)
    body = "\n".join(f"    {line}" for line in lines) if lines else "    (empty)"
    return f"; last lines of {log_path}:\n{body}"


class DirLock:
    """An exclusive ``flock`` on a file, held while a server or stack owns a state folder.

    Two dev stacks on one state folder would fight over the same Postgres data directory; the lock turns
    that into an immediate, clear error. The kernel drops it when the process dies, so it never goes stale.
    """

    def __init__(self, path: Path, what: str) -> None:
        self._path = path
        self._what = what
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StartupError` naming the process that holds it."""
        if self._fh is not None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fh = self._path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise StartupError(
                f"{self._what} in {self._path.parent} is in use by pid {holder}; stop it first "
                "or use another state folder"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
