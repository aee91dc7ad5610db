"""Run the platform's services as child processes and wait until every one of them is healthy.

Each service is ``python -m services.<name>`` (the gateway ``python -m gateway``) started from the
repository root. What it needs to know comes from environment variables, the settings contract every
service reads:

==============================  ===================================================================
``WEALIST_STATE_DIR``           absolute path of the state folder (the PKI lives in ``<it>/pki``)
``WEALIST_WORKLOAD``            the service's own name, which is also its mTLS identity
``WEALIST_GRPC_PORT``           its gRPC port on 127.0.0.1 (not set for the gateway)
``WEALIST_HTTP_PORT``           its plain-HTTP port for ``/health`` and ``/metrics``: gRPC port + 100,
                                or the gateway's one HTTP port
``WEALIST_<NAME>_ADDR``         ``127.0.0.1:<port>`` of every service in the set, so they find each other
``DATABASE_URL``                server URL; a service swaps the database name for ``wealist_<svc>``
``REDIS_URL``                   ``redis://...``
``S3_ENDPOINT`` ``S3_BUCKET``   object store URL, bucket, credentials and region
``S3_ACCESS_KEY``
``S3_SECRET_KEY`` ``S3_REGION``
==============================  ===================================================================

plus whatever the caller adds (``AUTH_TEST_LOGIN_ENABLED=true``, ...), which wins over all of the above.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import httpx

from devstack._process import DevstackError, signal_group, spawn, stop_process
from mesh import DEFAULT_PORTS, GATEWAY_HTTP_PORT, HTTP_PORT_OFFSET

__all__ = [
    "GATEWAY_PORT",
    "HTTP_PORT_OFFSET",
    "REPO_ROOT",
    "SERVICE_PORTS",
    "InfraEndpoints",
    "ServiceExitedError",
    "ServiceSpec",
    "ServiceTimeoutError",
    "Supervisor",
    "build_service_env",
    "discover_services",
]

logger = logging.getLogger("devstack")

#: The repository this package lives in: services are started from here.
REPO_ROOT: Final = Path(__file__).resolve().parent.parent
#: gRPC ports of the services: the runtime's own table (the order is the start order).
SERVICE_PORTS: Final[Mapping[str, int]] = DEFAULT_PORTS
#: The REST gateway's HTTP port: its settings' default.
GATEWAY_PORT: Final = GATEWAY_HTTP_PORT
#: Lines of output kept per child for error reports.
TAIL_LINES: Final = 200


class ServiceExitedError(DevstackError):
    """A service process ended while it should be running; carries its exit code and last output."""

    def __init__(self, name: str, returncode: int, tail: list[str]) -> None:
        self.name = name
        self.returncode = returncode
        self.tail = tail
        if returncode < 0:
            how = f"was killed by {_signal_name(-returncode)}"
        else:
            how = f"exited with code {returncode}"
        body = "\n".join(f"    {line}" for line in tail[-40:]) or "    (no output)"
        super().__init__(f"service {name} {how}; its last output:\n{body}")


class ServiceTimeoutError(DevstackError):
    """Services still not healthy when the deadline passed."""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service to run: its module and ports."""

    name: str
    #: What ``python -m`` runs.
    module: str
    #: The gRPC port, or ``None`` for the gateway (which speaks HTTP only).
    grpc_port: int | None
    #: The port of ``/health`` and ``/metrics``.
    http_port: int

    @property
    def addr(self) -> str:
        """``127.0.0.1:<port>`` where others reach it: the gRPC port, or the gateway's HTTP port."""
        return f"127.0.0.1:{self.grpc_port if self.grpc_port is not None else self.http_port}"

    @property
    def addr_env(self) -> str:
        """Name of the variable that carries :attr:`addr` to the other services."""
        return f"WEALIST_{self.name.upper()}_ADDR"

    @property
    def http_base(self) -> str:
        """``http://127.0.0.1:<http_port>``."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def health_url(self) -> str:
        """The plain-HTTP health endpoint polled at start."""
        return f"{self.http_base}/health"

    @property
    def metrics_url(self) -> str:
        """The Prometheus endpoint."""
        return f"{self.http_base}/metrics"

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port the service listens on."""
        return (self.http_port,) if self.grpc_port is None else (self.grpc_port, self.http_port)


def discover_services(
    repo_root: Path | None = None, *, port_offset: int = 0, names: Collection[str] | None = None
) -> list[ServiceSpec]:
    """The services present in the repository (a ``__main__.py`` in their package), ports shifted.

    ``names`` narrows the set; asking for one that does not exist (yet) is an error rather than a
    silent gap. The gateway is found as a top-level ``gateway`` package or as ``services/gateway``.
    """
    root = repo_root or REPO_ROOT
    found: dict[str, ServiceSpec] = {}
    for name, port in SERVICE_PORTS.items():
        if (root / "services" / name / "__main__.py").is_file():
            grpc_port = port + port_offset
            found[name] = ServiceSpec(name, f"services.{name}", grpc_port, grpc_port + HTTP_PORT_OFFSET)
    for module in ("gateway", "services.gateway"):
        if (root.joinpath(*module.split(".")) / "__main__.py").is_file():
            found["gateway"] = ServiceSpec("gateway", module, None, GATEWAY_PORT + port_offset)
            break
    if names is None:
        return list(found.values())
    missing = sorted(set(names) - found.keys())
    if missing:
        raise DevstackError(
            f"no such service in {root}: {', '.join(missing)} (present: {', '.join(found) or 'none'})"
        )
    return [spec for name, spec in found.items() if name in names]


@dataclass(frozen=True, slots=True)
class InfraEndpoints:
    """Where the databases and the object store are, as the services' settings name them."""

    database_url: str
    redis_url: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    s3_bucket: str
    s3_region: str

    def env(self) -> dict[str, str]:
        """The settings variables for these endpoints."""
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "S3_ENDPOINT": self.s3_endpoint,
            "S3_ACCESS_KEY": self.s3_access_key,
            "S3_SECRET_KEY": self.s3_secret_key,
            "S3_BUCKET": self.s3_bucket,
            "S3_REGION": self.s3_region,
        }


def build_service_env(
    spec: ServiceSpec,
    services: Iterable[ServiceSpec],
    *,
    state_dir: Path,
    infra: InfraEndpoints,
    extra_env: Mapping[str, str] | None = None,
    base_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one service: ``base_env`` (default: ours), the contract, then ``extra_env``."""
    env = dict(os.environ if base_env is None else base_env)
    env.update(infra.env())
    env.update({s.addr_env: s.addr for s in services})
    env["WEALIST_STATE_DIR"] = str(state_dir.resolve())
    env["WEALIST_WORKLOAD"] = spec.name
    env["WEALIST_HTTP_PORT"] = str(spec.http_port)
    if spec.grpc_port is not None:
        env["WEALIST_GRPC_PORT"] = str(spec.grpc_port)
    else:
        env.pop("WEALIST_GRPC_PORT", None)
    # Line-by-line output through the pipe, so our prefixed copy keeps pace with the service.
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra_env or {})
    return env


class _Child:
    """A running service: its process, the thread copying its output, and the last lines of it."""

    def __init__(
        self, spec: ServiceSpec, proc: subprocess.Popen[bytes], write: Callable[[str], None]
    ) -> None:
        self.spec = spec
        self.proc = proc
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.healthy = False
        self._write = write
        self._reader = threading.Thread(target=self._pump, name=f"devstack-{spec.name}-output", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        stream: IO[bytes] | None = self.proc.stdout
        if stream is None:
            return
        prefix = f"{self.spec.name:>7} | "
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self.tail.append(line)
            self._write(prefix + line)
        stream.close()

    def join_output(self, timeout: float) -> None:
        """Wait for the output copy to reach the end of the stream (so the tail is complete)."""
        self._reader.join(timeout)


class Supervisor:
    """Starts services, waits for their health, notices when one dies, and stops them all.

    Output of every child is copied line by line, prefixed with the service name, to ``output``
    (default: our stdout) and the last :data:`TAIL_LINES` lines are kept for error reports.
    """

    def __init__(self, *, repo_root: Path | None = None, output: Callable[[str], None] | None = None) -> None:
        self.repo_root = repo_root or REPO_ROOT
        self._output = output
        self._write_lock = threading.Lock()
        self._children: dict[str, _Child] = {}

    def _write(self, line: str) -> None:
        with self._write_lock:
            if self._output is not None:
                self._output(line)
            else:
                # Looked up on every line: pytest swaps sys.stdout per test.
                sys.stdout.write(line + "\n")
                sys.stdout.flush()

    @property
    def services(self) -> list[ServiceSpec]:
        """The services started, in start order."""
        return [child.spec for child in self._children.values()]

    def pids(self) -> dict[str, int]:
        """Process id of each running service (for resource readings)."""
        return {name: child.proc.pid for name, child in self._children.items()}

    def tail(self, name: str) -> list[str]:
        """The last lines a service wrote."""
        return list(self._children[name].tail)

    def start(self, spec: ServiceSpec, env: Mapping[str, str]) -> None:
        """Launch one service (without waiting for it)."""
        if spec.name in self._children:
            raise DevstackError(f"service {spec.name} is already running")
        proc = spawn(
            [sys.executable, "-m", spec.module],
            env=env,
            cwd=self.repo_root,
            stdout=subprocess.PIPE,
        )
        self._children[spec.name] = _Child(spec, proc, self._write)
        logger.info("started %s (pid %d) on %s", spec.name, proc.pid, spec.addr)

    def check(self) -> None:
        """Raise :class:`ServiceExitedError` for the first service that is no longer running."""
        for child in self._children.values():
            code = child.proc.poll()
            if code is not None:
                child.join_output(2.0)
                raise ServiceExitedError(child.spec.name, code, list(child.tail))

    def wait_healthy(self, timeout: float = 60.0, *, interval: float = 0.1) -> dict[str, float]:
        """Poll every service's ``/health`` until each answers 200; returns seconds until each did.

        Fails with :class:`ServiceExitedError` as soon as one dies, or :class:`ServiceTimeoutError` after
        ``timeout`` seconds naming the laggards and quoting their output.
        """
        started = time.monotonic()
        deadline = started + timeout
        became_healthy: dict[str, float] = {}
        # trust_env=False: a developer's HTTP(S)_PROXY must not capture requests to 127.0.0.1.
        with httpx.Client(trust_env=False, timeout=1.0) as http:
            while True:
                self.check()
                pending = [c for c in self._children.values() if not c.healthy]
                for child in pending:
                    try:
                        child.healthy = http.get(child.spec.health_url).status_code == 200
                    except httpx.TransportError:
                        child.healthy = False
                    if child.healthy:
                        became_healthy[child.spec.name] = time.monotonic() - started
                        logger.info("%s is healthy (%s)", child.spec.name, child.spec.health_url)
                if all(c.healthy for c in self._children.values()):
                    return became_healthy
                if time.monotonic() >= deadline:
                    laggards = [c for c in self._children.values() if not c.healthy]
                    details = "\n".join(
                        f"  {c.spec.name} ({c.spec.health_url}), last output:\n"
                        + ("\n".join(f"    {line}" for line in list(c.tail)[-20:]) or "    (no output)")
                        for c in laggards
                    )
                    names = ", ".join(c.spec.name for c in laggards)
                    raise ServiceTimeoutError(f"not healthy after {timeout:.0f} s: {names}\n{details}")
                time.sleep(interval)

    def stop(self, grace: float = 10.0) -> dict[str, int]:
        """SIGTERM every service at once, wait up to ``grace`` s in total, SIGKILL the rest.

        Returns each service's exit code; idempotent.
        """
        children, self._children = self._children, {}
        for child in children.values():
            if child.proc.poll() is None:
                # Signal the whole group: a service that forked workers takes them down with it.
                signal_group(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        codes: dict[str, int] = {}
        for name, child in children.items():
            # Already signalled above: wait out what is left of the grace, then kill.
            codes[name] = stop_process(child.proc, first=None, timeout=max(0.0, deadline - time.monotonic()))
            child.join_output(2.0)
            if child.proc.stdout is not None:
                child.proc.stdout.close()
        return codes
