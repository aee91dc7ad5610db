"""What every workload process does: serve gRPC over mTLS with health, reflection and the interceptor
chain, serve /metrics and /health over HTTP, hold the shared clients, and stop cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import redis.asyncio as aioredis
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from wealist.auth.v1 import auth_pb2, auth_pb2_grpc

from mesh._access import access_table
from mesh._channels import Channels
from mesh._http import bind, http_app, http_server
from mesh._identity import TlsMaterial, load_tls
from mesh._interceptors import ChainedServer, MeshChain
from mesh._metrics import ServerMetrics
from mesh._redis import redis_client
from mesh._settings import MeshSettings
from mesh._tokens import JwksSource, TokenVerifier
from mesh._tracing import setup_tracing, shutdown_tracing

log = logging.getLogger("wealist.mesh")


@dataclass(frozen=True, slots=True)
class Hosted:
    """A service this process serves, and how to add its servicer to a server."""

    service: ServiceDescriptor
    register: Callable[[grpc.aio.Server], None]


class RemoteJwks(JwksSource):
    """Auth's signing keys, fetched over gRPC (the verifier caches them)."""

    def __init__(self, channels: Channels) -> None:
        self._channels = channels

    async def fetch_jwks(self) -> dict[str, Any]:
        stub = auth_pb2_grpc.AuthServiceStub(self._channels.to("auth"))
        response = await stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=5.0)
        return MessageToDict(response, preserving_proto_field_name=True)


class Runtime:
    """The process-wide parts of one workload, built once from its settings."""

    def __init__(self, settings: MeshSettings) -> None:
        self.settings = settings
        setup_tracing(settings.workload)
        self.tls: TlsMaterial | None = (
            None if settings.istio_mode else load_tls(settings.state_dir, settings.workload)
        )
        self.channels = Channels(settings, self.tls)
        self.redis: aioredis.Redis = redis_client(settings.redis_url)
        self.metrics = ServerMetrics()
        self.verifier: TokenVerifier | None = None
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

    def request_stop(self) -> None:
        """Begin a graceful stop (what SIGTERM does)."""
        self._stop.set()

    def _server_credentials(self) -> grpc.ServerCredentials | None:
        if self.tls is None:
            return None
        return grpc.ssl_server_credentials(
            [(self.tls.key, self.tls.cert)], root_certificates=self.tls.ca, require_client_auth=True
        )

    async def serve(self, hosted: Sequence[Hosted], *, started: asyncio.Event | None = None) -> None:
        """Serve until SIGTERM/SIGINT or ``request_stop()``, then stop gracefully."""
        settings = self.settings
        table = access_table(h.service for h in hosted)
        chain = MeshChain(
            table=table,
            metrics=self.metrics,
            verifier=self.verifier,
            istio_mode=settings.istio_mode,
            namespace=settings.namespace,
            default_deadline=settings.default_deadline_seconds,
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


def run(settings: MeshSettings, main: Callable[[Runtime], Awaitable[None]]) -> None:
    """The body of every ``services/<svc>/__main__.py``: build the runtime, run ``main`` on it."""

    async def _main() -> None:
        runtime = Runtime(settings)
        await main(runtime)

    asyncio.run(_main())
