"""The whole platform on one machine: infrastructure, dev PKI and services, started and stopped as one.

Start order: Postgres, Redis and S3 are launched together, the dev PKI is made while they come up,
then each is awaited and provisioned (databases, bucket); then the services start and are awaited.
Stop order is the reverse of what depends on what: services first (they hold connections and may flush
on the way out), then S3, Redis and Postgres last.

``DATABASE_URL``, ``REDIS_URL`` and ``S3_ENDPOINT`` (with ``S3_ACCESS_KEY``, ``S3_SECRET_KEY``,
``S3_BUCKET``) in the environment switch each part to an external server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

from devstack import postgres as _pg
from devstack import redis as _redis
from devstack import s3 as _s3
from devstack._process import DevstackError, DirLock, port_is_free
from devstack.supervisor import (
    GATEWAY_PORT,
    HTTP_PORT_OFFSET,
    REPO_ROOT,
    SERVICE_PORTS,
    InfraEndpoints,
    ServiceSpec,
    Supervisor,
    build_service_env,
    discover_services,
)

__all__ = [
    "DEBUG_WORKLOAD",
    "GATEWAY_WORKLOAD",
    "PkiFunction",
    "Stack",
    "StackInfo",
    "pick_port_offset",
    "run_stack",
]

logger = logging.getLogger("devstack")

#: Identities the dev PKI issues besides the services: the gateway (even before it runs, so tools can
#: act as it) and the operator's ``debug`` identity that grpcurl uses.
GATEWAY_WORKLOAD: Final = "gateway"
DEBUG_WORKLOAD: Final = "debug"

#: ``mesh.identity.ensure_dev_pki``'s shape: (state folder, workload names) -> anything.
PkiFunction = Callable[[Path, Sequence[str]], object]


def _mesh_ensure_dev_pki(state_dir: Path, workloads: Sequence[str]) -> object:
    """The shared runtime's ``ensure_dev_pki``, imported only now.

    Imported lazily so the infrastructure half of the dev stack works on its own, and so importing
    ``devstack`` never drags in the gRPC runtime.
    """
    from mesh import ensure_dev_pki  # noqa: PLC0415 - see the docstring

    return ensure_dev_pki(state_dir, workloads)


@dataclass(frozen=True)
class StackInfo:
    """Where everything of a running stack is; :meth:`to_json` is what ``--ready-file`` holds."""

    state_dir: Path
    database_url: str
    redis_url: str
    s3: _s3.S3Info
    services: Mapping[str, ServiceSpec]
    #: Seconds from the call to ``start`` until every service was healthy.
    startup_seconds: float
    #: When each part was ready, in seconds from the call to ``start`` (``pki``, ``postgres``, ``redis``,
    #: ``s3``, then each service); the servers start in parallel, so these are a timeline, not durations.
    timings: Mapping[str, float] = field(default_factory=dict)
    #: Which infrastructure parts the stack runs itself (False: external server).
    embedded: Mapping[str, bool] = field(default_factory=dict)

    @property
    def pki_dir(self) -> Path:
        """The dev PKI folder (``ca.pem``, ``<workload>.pem``, ``<workload>-key.pem``)."""
        return self.state_dir / "pki"

    @property
    def infra(self) -> InfraEndpoints:
        """The infrastructure endpoints as the services' settings name them."""
        return InfraEndpoints(
            database_url=self.database_url,
            redis_url=self.redis_url,
            s3_endpoint=self.s3.endpoint,
            s3_access_key=self.s3.access_key,
            s3_secret_key=self.s3.secret_key,
            s3_bucket=self.s3.bucket,
            s3_region=self.s3.region,
        )

    def cert_paths(self, workload: str) -> tuple[Path, Path]:
        """(certificate, key) of a workload in the dev PKI."""
        return self.pki_dir / f"{workload}.pem", self.pki_dir / f"{workload}-key.pem"

    def grpcurl_args(self, workload: str = DEBUG_WORKLOAD) -> list[str]:
        """``grpcurl`` TLS flags presenting ``workload``'s certificate (default: the debug identity).

        The command is the grpcurl installed beside this interpreter (``nox -s up`` installs it into its
        virtualenv) by its full path, so a printed command works pasted into any shell.
        """
        cert, key = self.cert_paths(workload)
        binary = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or "grpcurl"
        return [binary, "-cacert", str(self.pki_dir / "ca.pem"), "-cert", str(cert), "-key", str(key)]

    def to_json(self) -> dict[str, object]:
        """Everything a client of the stack needs, as plain JSON types."""
        return {
            "pid": os.getpid(),
            "state_dir": str(self.state_dir),
            "startup_seconds": round(self.startup_seconds, 3),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "pki": {
                "dir": str(self.pki_dir),
                "ca": str(self.pki_dir / "ca.pem"),
                "debug_cert": str(self.cert_paths(DEBUG_WORKLOAD)[0]),
                "debug_key": str(self.cert_paths(DEBUG_WORKLOAD)[1]),
            },
            "postgres": {
                "url": self.database_url,
                "databases": list(_pg.DATABASES),
                "embedded": self.embedded.get("postgres", True),
            },
            "redis": {"url": self.redis_url, "embedded": self.embedded.get("redis", True)},
            "s3": {
                "endpoint": self.s3.endpoint,
                "access_key": self.s3.access_key,
                "secret_key": self.s3.secret_key,
                "bucket": self.s3.bucket,
                "region": self.s3.region,
                "embedded": self.embedded.get("s3", True),
            },
            "services": {
                name: {
                    "addr": spec.addr,
                    "grpc_port": spec.grpc_port,
                    "http_port": spec.http_port,
                    "health_url": spec.health_url,
                    "metrics_url": spec.metrics_url,
                }
                for name, spec in self.services.items()
            },
            "gateway_url": self.services["gateway"].http_base if "gateway" in self.services else None,
            "env": self.infra.env(),
        }


class Stack:
    """Infrastructure, PKI and services for one state folder; a context manager that yields
    :class:`StackInfo` and tears everything down on exit.

    ``port_offset`` shifts every default port (services and infrastructure), so a test stack and a
    developer's ``nox -s up`` can run side by side. ``services=None`` runs every service present in
    the repository; ``services=[]`` runs the infrastructure and the PKI only. ``environ`` (default:
    ``os.environ``) is where ``DATABASE_URL``/``REDIS_URL``/``S3_*`` are read and what the services
    inherit; ``extra_env`` is added on top for the services.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        port_offset: int = 0,
        extra_env: Mapping[str, str] | None = None,
        services: Collection[str] | None = None,
        environ: Mapping[str, str] | None = None,
        repo_root: Path | None = None,
        health_timeout: float = 60.0,
        output: Callable[[str], None] | None = None,
        ensure_pki: PkiFunction | None = None,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.port_offset = port_offset
        self.extra_env = dict(extra_env or {})
        self.repo_root = repo_root or REPO_ROOT
        self.health_timeout = health_timeout
        self._environ = dict(os.environ if environ is None else environ)
        self._service_names = services
        self._ensure_pki = ensure_pki or _mesh_ensure_dev_pki
        env = self._environ
        self.postgres = _pg.PostgresServer(
            self.state_dir,
            port=_pg.DEFAULT_PORT + port_offset,
            external_url=env.get("DATABASE_URL"),
        )
        self.redis = _redis.RedisServer(
            self.state_dir, port=_redis.DEFAULT_PORT + port_offset, external_url=env.get("REDIS_URL")
        )
        self.s3 = _s3.S3Server(
            self.state_dir,
            port=_s3.DEFAULT_PORT + port_offset,
            external_url=env.get("S3_ENDPOINT"),
            access_key=env.get("S3_ACCESS_KEY") or _s3.DEFAULT_ACCESS_KEY,
            secret_key=env.get("S3_SECRET_KEY") or _s3.DEFAULT_SECRET_KEY,
            bucket=env.get("S3_BUCKET") or _s3.DEFAULT_BUCKET,
            region=env.get("S3_REGION") or _s3.DEFAULT_REGION,
        )
        self.supervisor = Supervisor(repo_root=self.repo_root, output=output)
        self._lock = DirLock(self.state_dir / "devstack.lock", what="a dev stack")
        self._info: StackInfo | None = None

    @property
    def info(self) -> StackInfo:
        """The running stack's addresses (after :meth:`start`)."""
        if self._info is None:
            raise DevstackError("the stack is not running")
        return self._info

    def start(self) -> StackInfo:
        """Bring everything up and wait until all services are healthy; tears down on any failure."""
        if self._info is not None:
            return self._info
        started = time.monotonic()
        timings: dict[str, float] = {}
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
            specs = discover_services(self.repo_root, port_offset=self.port_offset, names=self._service_names)
            servers = (self.postgres, self.redis, self.s3)
            for server in servers:
                server.spawn()
            # Key generation overlaps the servers' start-up.
            # Every identity of the platform, running or not yet written: tools and tests act as them.
            names = [*SERVICE_PORTS, *(s.name for s in specs), GATEWAY_WORKLOAD, DEBUG_WORKLOAD]
            workloads = list(dict.fromkeys(names))
            self._ensure_pki(self.state_dir, workloads)
            timings["pki"] = time.monotonic() - started
            for server in servers:
                server.wait_ready()
                timings[server.name] = time.monotonic() - started
                logger.info("%s ready: %s", server.name, server.url)
            infra = InfraEndpoints(
                database_url=self.postgres.url,
                redis_url=self.redis.url,
                s3_endpoint=self.s3.url,
                s3_access_key=self.s3.access_key,
                s3_secret_key=self.s3.secret_key,
                s3_bucket=self.s3.bucket,
                s3_region=self.s3.region,
            )
            for spec in specs:
                env = build_service_env(
                    spec,
                    specs,
                    state_dir=self.state_dir,
                    infra=infra,
                    extra_env=self.extra_env,
                    base_env=self._environ,
                )
                self.supervisor.start(spec, env)
            services_from = time.monotonic() - started
            healthy = self.supervisor.wait_healthy(self.health_timeout)
            timings.update({name: services_from + seconds for name, seconds in healthy.items()})
        except BaseException:
            self.stop()
            raise
        self._info = StackInfo(
            state_dir=self.state_dir,
            database_url=self.postgres.url,
            redis_url=self.redis.url,
            s3=self.s3.info,
            services={spec.name: spec for spec in specs},
            startup_seconds=time.monotonic() - started,
            timings=timings,
            embedded={s.name: s.embedded for s in servers},
        )
        return self._info

    def check(self) -> None:
        """Raise if a service or an embedded server has died since the start."""
        self.supervisor.check()
        for server in (self.postgres, self.redis, self.s3):
            server.require_running()

    def stop(self) -> None:
        """Stop services, then S3, Redis and Postgres; every step runs even if an earlier one failed."""
        self._info = None
        steps: list[tuple[str, Callable[[], object]]] = [
            ("services", self.supervisor.stop),
            ("s3", self.s3.stop),
            ("redis", self.redis.stop),
            ("postgres", self.postgres.stop),
            ("lock", self._lock.release),
        ]
        for what, step in steps:
            try:
                step()
            except Exception:
                logger.exception("stopping %s failed", what)

    def __enter__(self) -> StackInfo:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Stack(state_dir={self.state_dir!s}, port_offset={self.port_offset})"


@contextlib.contextmanager
def run_stack(
    state_dir: Path,
    port_offset: int = 0,
    extra_env: Mapping[str, str] | None = None,
    services: Collection[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    repo_root: Path | None = None,
    health_timeout: float = 60.0,
    output: Callable[[str], None] | None = None,
    ensure_pki: PkiFunction | None = None,
) -> Iterator[StackInfo]:
    """``with run_stack(tmp_path, offset) as info:`` runs a :class:`Stack` for the block's duration."""
    stack = Stack(
        state_dir,
        port_offset=port_offset,
        extra_env=extra_env,
        services=services,
        environ=environ,
        repo_root=repo_root,
        health_timeout=health_timeout,
        output=output,
        ensure_pki=ensure_pki,
    )
    with stack as info:
        yield info


def _all_ports(offset: int) -> list[int]:
    # Every port a stack may use, including services that do not exist yet, so an offset picked
    # today stays good as they land.
    grpc = list(SERVICE_PORTS.values())
    ports = [*grpc, *(p + HTTP_PORT_OFFSET for p in grpc), GATEWAY_PORT]
    ports += [_pg.DEFAULT_PORT, _redis.DEFAULT_PORT, _s3.DEFAULT_PORT]
    return [p + offset for p in ports]


def pick_port_offset(*, low: int = 1000, high: int = 13000, step: int = 10, attempts: int = 200) -> int:
    """A port offset under which every dev-stack port is free right now (for tests).

    The range keeps every port below 32768, out of Linux's ephemeral range, so an outgoing connection
    cannot take one between this check and the servers' bind.
    """
    rng = random.SystemRandom()
    for _ in range(attempts):
        offset = rng.randrange(low, high, step)
        if all(port_is_free(p) for p in _all_ports(offset)):
            return offset
    raise DevstackError("no free port offset found for a dev stack")
