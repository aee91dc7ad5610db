"""The service kit: what every workload process does, so that its ``__main__.py`` only names its parts.

A service writes one ``build`` function that makes its parts on a :class:`Runtime` (its database, the
components it starts, its background work) and returns its servicers; ``run(settings, build)`` does the
rest: logging, mTLS, the server with health, reflection and the interceptor chain, /metrics and /health
over HTTP, the shared clients, and a clean stop that undoes everything in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol

import grpc
import redis.asyncio as aioredis
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import ProcessCollector
from typing_extensions import TypeVar
from wealist.auth.v1 import auth_pb2, auth_pb2_grpc

from mesh._access import access_table
from mesh._channels import Channels
from mesh._db import Database, migrate
from mesh._http import bind, http_app, http_server
from mesh._identity import TlsMaterial, load_tls
from mesh._interceptors import ChainedServer, MeshChain
from mesh._logging import configure_logging
from mesh._metrics import ServerMetrics
from mesh._objects import ObjectStore
from mesh._redis import redis_client
from mesh._settings import MeshSettings
from mesh._tokens import JwksSource, TokenVerifier
from mesh._tracing import setup_tracing, shutdown_tracing
from mesh._uploads import sweep_uploads_forever

log = logging.getLogger("wealist.mesh")

# Defaulted, so that a plain ``Runtime`` (a test's, a benchmark's) means one on MeshSettings.
SettingsT = TypeVar("SettingsT", bound=MeshSettings, default=MeshSettings)


class Component(Protocol):
    """A part with a life of its own (a pub/sub hub, an outbox relay): started once, closed at the end."""

    async def start(self) -> None:
        """Begin working (subscribe, spawn its tasks)."""

    async def close(self) -> None:
        """Stop working and release what it holds."""


ComponentT = TypeVar("ComponentT", bound=Component)
# A generated ``add_XServicer_to_server``.
_Adder = Callable[[object, grpc.aio.Server], None]


@dataclass(frozen=True, slots=True)
class Hosted:
    """A service this process serves, and how to add its servicer to a server.

    :func:`hosted_of` derives it from a servicer; build one by hand only for a servicer that does not
    subclass a generated base class.
    """

    service: ServiceDescriptor
    register: Callable[[grpc.aio.Server], None]


def hosted_of(servicer: object) -> list[Hosted]:
    """The services ``servicer`` implements, found from the generated base classes it subclasses.

    ``XServicer`` of a ``*_pb2_grpc`` module serves the service ``X`` of the ``*_pb2`` module beside it
    and is added with that module's ``add_XServicer_to_server``; nothing is declared twice.
    """
    found: list[Hosted] = []
    for base in type(servicer).__mro__:
        module = sys.modules.get(base.__module__)
        name = base.__name__
        if module is None or not module.__name__.endswith("_pb2_grpc") or not name.endswith("Servicer"):
            continue
        add: _Adder | None = getattr(module, f"add_{name}_to_server", None)
        if add is None:
            continue
        messages = importlib.import_module(module.__name__.removesuffix("_grpc"))
        service = messages.DESCRIPTOR.services_by_name[name.removesuffix("Servicer")]
        found.append(Hosted(service, functools.partial(add, servicer)))
    if not found:
        raise TypeError(f"{type(servicer).__name__} subclasses no generated servicer base class")
    return found


class RemoteJwks(JwksSource):
    """Auth's signing keys, fetched over gRPC (the verifier caches them)."""

    def __init__(self, channels: Channels) -> None:
        self._channels = channels

    async def fetch_jwks(self) -> dict[str, Any]:
        """The JWKS auth publishes."""
        stub = auth_pb2_grpc.AuthServiceStub(self._channels.to("auth"))
        response = await stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=5.0)
        return MessageToDict(response, preserving_proto_field_name=True)


class Runtime(Generic[SettingsT]):
    """The process-wide parts of one workload, built once from its settings (typed as the service's)."""

    def __init__(self, settings: SettingsT) -> None:
        self.settings: SettingsT = settings
        setup_tracing(settings.workload)
        self.tls: TlsMaterial | None = (
            None if settings.istio_mode else load_tls(settings.state_dir, settings.workload)
        )
        self.channels = Channels(settings, self.tls)
        self.redis: aioredis.Redis = redis_client(settings.redis_url)
        self.metrics = ServerMetrics()
        # Resident memory and open files on /metrics: what a stream or a cache costs is read there.
        ProcessCollector(registry=self.metrics.registry)
        # User tokens are checked against auth's published keys; auth itself swaps in its own key ring.
        self.verifier: TokenVerifier = TokenVerifier(
            jwks=RemoteJwks(self.channels), redis=self.redis, issuer=settings.jwt_issuer
        )
        self.grpc_port: int | None = None
        self.http_port: int | None = None
        self._health = HealthServicer()
        self._serving = False
        self._stop = asyncio.Event()
        self._cleanups: list[Callable[[], Awaitable[None]]] = []

    def verify_users_with(self, jwks: JwksSource) -> None:
        """Check end-user tokens against these keys (auth's own key ring, or ``RemoteJwks``)."""
        self.verifier = TokenVerifier(jwks=jwks, redis=self.redis, issuer=self.settings.jwt_issuer)

    def on_shutdown(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Run ``cleanup`` after the server stopped (close a database, say); last added runs first."""
        self._cleanups.append(cleanup)

    async def database(self, migrations: Path) -> Database:
        """The service's own database (``wealist_<workload>``), closed at shutdown.

        Its migrations are applied first when ``migrate_on_start`` is set (dev and tests); in Kubernetes
        a Job applies them (``python -m mesh.migrate``) and services start with it off.
        """
        if self.settings.environment == "production" and "database_url" not in self.settings.model_fields_set:
            # Checked here, not with the other settings: only the services that keep a database need it.
            raise SystemExit(
                f"{self.settings.workload}: refusing to start, production refuses the dev defaults:\n"
                "    DATABASE_URL is not set (its default is the dev stack's)"
            )
        url = self.settings.service_database_url()
        if self.settings.migrate_on_start:
            await migrate(migrations, url)
        database = Database(url)
        self.on_shutdown(database.close)
        return database

    async def start(self, component: ComponentT) -> ComponentT:
        """Start ``component`` now and close it at shutdown; returns it."""
        await component.start()
        self.on_shutdown(component.close)
        return component

    def background(self, work: Callable[[], Coroutine[Any, Any, None]], *, name: str) -> None:
        """Run ``work()`` as a task for the life of the process; it is cancelled at shutdown.

        The work handles its own errors (a periodic job logs and goes on); one that escapes ends the
        task and is logged then, not at shutdown.
        """
        task = asyncio.create_task(work(), name=name)
        task.add_done_callback(_log_failure)

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        self.on_shutdown(stop)

    def sweep_uploads(
        self, database: Database, store: ObjectStore, model: type[Any], *, every: float
    ) -> None:
        """Remove expired unconfirmed uploads of ``model`` (rows and objects) every ``every`` seconds."""
        self.background(
            lambda: sweep_uploads_forever(database, store, model, interval=every),
            name=f"{self.settings.workload}-upload-sweep",
        )

    def request_stop(self) -> None:
        """Begin a graceful stop (what SIGTERM does)."""
        self._stop.set()

    def _server_credentials(self) -> grpc.ServerCredentials | None:
        if self.tls is None:
            return None
        return grpc.ssl_server_credentials(
            [(self.tls.key, self.tls.cert)], root_certificates=self.tls.ca, require_client_auth=True
        )

    async def serve(self, servicers: Sequence[object], *, started: asyncio.Event | None = None) -> None:
        """Serve ``servicers`` until SIGTERM/SIGINT or ``request_stop()``, then stop gracefully.

        Each is a servicer (registered from its generated base class, see :func:`hosted_of`) or a
        :class:`Hosted`.
        """
        settings = self.settings
        hosted: list[Hosted] = []
        for servicer in servicers:
            hosted.extend([servicer] if isinstance(servicer, Hosted) else hosted_of(servicer))
        table = access_table(h.service for h in hosted)
        chain = MeshChain(
            table=table,
            metrics=self.metrics,
            verifier=self.verifier,
            istio_mode=settings.istio_mode,
            namespace=settings.namespace,
            default_deadline=settings.server_deadline_seconds,
        )
        server = ChainedServer(grpc.aio.server(options=[("grpc.so_reuseport", 0)]), chain)
        for item in hosted:
            item.register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = [h.service.full_name for h in hosted]
        reflection.enable_server_reflection(
            [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            server,
        )
        address = f"{settings.bind_host}:{settings.grpc_port or 0}"
        credentials = self._server_credentials()
        if credentials is None:
            self.grpc_port = server.add_insecure_port(address)
        else:
            self.grpc_port = server.add_secure_port(address, credentials)
        await server.start()

        http_socket = bind(settings.bind_host, settings.http_port or 0)
        self.http_port = http_socket.getsockname()[1]
        http = http_server(http_app(self.metrics.registry, lambda: self._serving, settings.workload))
        http_task = asyncio.create_task(http.serve(sockets=[http_socket]))

        for name in ["", *names]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._serving = True
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        log.info("serving", extra={"grpc_port": self.grpc_port, "http_port": self.http_port})
        if started is not None:
            started.set()
        try:
            await self._stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            self._serving = False
            await self._health.enter_graceful_shutdown()
            await server.stop(settings.grace_seconds)
            http.should_exit = True
            await http_task
            await self.aclose()
            log.info("stopped")

    async def aclose(self) -> None:
        """Release the shared clients and whatever services registered with ``on_shutdown``."""
        while self._cleanups:
            await self._cleanups.pop()()
        await self.channels.close()
        await self.redis.aclose()
        shutdown_tracing()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s ended", task.get_name(), exc_info=task.exception())


Build = Callable[[Runtime[SettingsT]], Awaitable[Sequence[object]]]


def run(settings: SettingsT, build: Build[SettingsT]) -> None:
    """The body of every ``services/<svc>/__main__.py``: logs, the runtime, ``build``'s servicers served.

    ``build`` makes the service's parts on the runtime and returns its servicers. If it fails, whatever it
    had set up is closed again before the error ends the process.
    """
    configure_logging(settings.workload, level=settings.log_level, json_lines=settings.log_json)

    async def _main() -> None:
        runtime = Runtime(settings)
        try:
            servicers = await build(runtime)
        except BaseException:
            await runtime.aclose()
            raise
        await runtime.serve(servicers)

    asyncio.run(_main())
