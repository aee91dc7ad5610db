"""The gateway's state, built once at start: the route table, its routers, the backend channels, the
token verifier and the metrics; and the edge checks every transport (REST, SSE, WebSocket) shares.

``app.py`` (the REST handler and the ASGI assembly) and ``streams.py`` (SSE, WebSocket) both import
from here and never from each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import redis.asyncio as aioredis
from google.protobuf.descriptor import ServiceDescriptor
from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.errors import HttpError, Refused
from gateway.metadata import grpc_timeout
from gateway.mounts import split_prefix
from gateway.openapi import openapi_document, platform_comments
from gateway.routing import Route, build_routes
from gateway.settings import GatewaySettings
from gateway.template import Router
from mesh import (
    Channels,
    RemoteJwks,
    TokenVerifier,
    UserAuth,
    UserClaims,
    bearer_token,
    load_tls,
    redis_client,
)

__all__ = ["Backend", "Gateway", "presented_token"]


class Backend:
    """One callable per route, on the long-lived channel of its workload.

    Made on first use: a grpc.aio channel belongs to the event loop it was created in, and the app is
    built before the server's loop runs.
    """

    __slots__ = ("_call", "_channels", "route")

    def __init__(self, route: Route, channels: Channels) -> None:
        self.route = route
        self._channels = channels
        self._call: Any = None

    @property
    def call(self) -> Any:
        """The multi-callable of this route's gRPC method."""
        if self._call is None:
            self._call = _callable(self.route, self._channels.to(self.route.workload))
        return self._call


def _callable(route: Route, channel: grpc.aio.Channel) -> Any:
    serialize = route.request_class.SerializeToString
    deserialize = route.response_class.FromString
    # Registered methods get their call handle once, as generated stubs do, not on every call (the flag
    # is grpcio's own, used by its generated code; the typing stubs do not list it).
    if route.client_streaming and route.server_streaming:
        return channel.stream_stream(route.grpc_path, serialize, deserialize, _registered_method=True)  # type: ignore[call-arg]
    if route.server_streaming:
        return channel.unary_stream(route.grpc_path, serialize, deserialize, _registered_method=True)  # type: ignore[call-arg]
    return channel.unary_unary(route.grpc_path, serialize, deserialize, _registered_method=True)  # type: ignore[call-arg]


def presented_token(authorization: str | None, query_token: str | None = None) -> str | None:
    """The access token a request presents, by one strict rule for every transport.

    An ``Authorization`` header, when sent, must be ``Bearer <token>`` (else ``Unauthenticated``
    ``TOKEN_MALFORMED``, as every service's runtime answers it); it is never silently replaced by the
    query. Without the header, streams take ``?token=`` (browsers cannot set headers on EventSource or
    WebSocket); REST calls pass no ``query_token``.
    """
    if authorization:
        return bearer_token(authorization)
    return query_token or None


class Gateway:
    """The route table, the backend channels and the edge checks, built once at start."""

    def __init__(
        self,
        settings: GatewaySettings,
        services: Sequence[ServiceDescriptor],
        *,
        addresses: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.services = list(services)
        self.routes = build_routes(self.services)
        self.workloads = sorted({route.workload for route in self.routes})
        self.addresses = dict(addresses or {})
        tls = None if settings.istio_mode else load_tls(settings.state_dir, settings.workload)
        self.channels = Channels(settings, tls, addresses=self.addresses, propagate=False)
        self.redis: aioredis.Redis = redis_client(settings.redis_url)
        self.verifier = TokenVerifier(
            jwks=RemoteJwks(self.channels), redis=self.redis, issuer=settings.jwt_issuer
        )
        self.routers: dict[str, Router[Backend]] = {}
        for route in self.routes:
            router = self.routers.setdefault(route.workload, Router())
            router.add(route.verb, route.template, Backend(route, self.channels))
        self.openapi = openapi_document(self.routes, comments=platform_comments())
        self.registry = CollectorRegistry()
        self._observed: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.requests = Counter(
            "http_requests_total", "HTTP requests by route template and status.",
            ["method", "route", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "http_request_duration_seconds", "Time to answer an HTTP request, by route template.",
            ["method", "route"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )  # fmt: skip

    def observe(self, method: str, label: str, status: int, seconds: float) -> None:
        """Count one request and its latency; the labelled children are looked up once per combination."""
        key = (method, label, status)
        children = self._observed.get(key)
        if children is None:
            children = (self.requests.labels(method, label, str(status)), self.latency.labels(method, label))
            self._observed[key] = children
        children[0].inc()
        children[1].observe(seconds)

    async def close(self) -> None:
        """Close the channels and Redis (at shutdown)."""
        await self.channels.close()
        await self.redis.aclose()

    def find(self, verb: str, path: str) -> tuple[Backend, dict[str, str]] | HttpError:
        """The route of a request, or the 404/405 to answer.

        Raises :class:`~mesh.InvalidField` when the route's path variable is not valid percent-encoded
        UTF-8 (``/api/boards/%c0``): the path is meant for the route, but its value cannot be read.
        """
        target = split_prefix(path)
        router = self.routers.get(target[0]) if target else None
        if target is None or router is None:
            return HttpError(404, "NOT_FOUND", "no such route")
        found = router.find(verb, target[1])
        if found is not None:
            return found
        if router.allowed_methods(target[1]):
            return HttpError(405, "METHOD_NOT_ALLOWED", f"{verb} is not allowed here")
        return HttpError(404, "NOT_FOUND", "no such route")

    async def user_token(self, route: Route, token: str | None) -> UserClaims | None:
        """The user of the call (its token to forward), checked at the edge as the method's option asks."""
        if route.user is UserAuth.REFUSED:
            return None
        if token is None:
            if route.user is UserAuth.REQUIRED:
                raise Refused(HttpError(401, "TOKEN_MISSING", "an access token is required"))
            return None
        return await self.verifier.verify(
            token, expected_type="access", closed_account_allowed=route.closed_account_allowed
        )

    def deadline(self, route: Route, header: str | None) -> float | None:
        """Grpc-Timeout when the client sent one (cut to the workload's maximum), else the workload's
        default; streams have none.
        """
        if route.server_streaming or route.client_streaming:
            return None
        asked = grpc_timeout(header)
        if not asked:  # none, malformed, or zero
            return self.settings.deadline_for(route.workload)
        return min(asked, self.settings.max_deadline_for(route.workload))
