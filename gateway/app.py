"""The gateway as a Starlette application: REST, SSE and WebSocket to gRPC, and its own endpoints.

Every service is mounted under ``/api/svc/<workload>`` and ``/svc/<workload>`` (the prefix is stripped
before matching, as the original ingress did); ``/api/oauth2/*`` and ``/oauth2/*`` go to auth.

A successful unary call answers the method's ``success_status``, unless the service names another 2xx
in ``x-http-code`` (response or trailing metadata), as with grpc-gateway: 207 when only some of a batch
was done. Any other value of it is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, WebSocketRoute
from starlette.routing import Route as HttpRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from wealist.mesh.v1 import options_pb2

from gateway import docs, streams
from gateway.core import Backend, Gateway, presented_token
from gateway.errors import HttpError, Refused, from_mesh_error, from_rpc_error, ws_close_code
from gateway.jsonprint import encode
from gateway.metadata import forwarded_headers, http_code, outgoing_metadata, request_id_of
from gateway.mounts import split_prefix
from gateway.redact import redact_uvicorn_logs
from gateway.settings import GatewaySettings
from gateway.transcode import build_request, envelope, response_payload
from mesh import MeshError, all_services

log = logging.getLogger("wealist.gateway")

HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# Successful statuses answered without a body (a route's success_status, or a service's x-http-code).
NO_CONTENT = frozenset({204, 205})


def _json(body: Any, status: int, headers: Mapping[str, str]) -> Response:
    payload = encode(body)
    return Response(payload, status_code=status, media_type="application/json", headers=dict(headers))


async def read_body(request: Request, limit: int, *, idle_seconds: float) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (declared or streamed).

    A body that stops arriving for ``idle_seconds`` (a slow client, or a Content-Length larger than what
    is sent) is a 408, after which the connection is closed: where the next request starts is unknown.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Refused(HttpError(413, "PAYLOAD_TOO_LARGE", f"the body exceeds {limit} bytes"))
    chunks, size = [], 0
    stream = aiter(request.stream())
    while True:
        try:
            async with asyncio.timeout(idle_seconds):
                chunk = await anext(stream)
        except StopAsyncIteration:
            break
        except TimeoutError:
            message = f"the request body stalled for more than {idle_seconds:g} s"
            raise Refused(HttpError(408, "REQUEST_TIMEOUT", message)) from None
        except ClientDisconnect:
            raise Refused(HttpError(400, "CLIENT_DISCONNECTED", "the client went away")) from None
        size += len(chunk)
        if size > limit:
            raise Refused(HttpError(413, "PAYLOAD_TOO_LARGE", f"the body exceeds {limit} bytes"))
        chunks.append(chunk)
    return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers as one dict, read once (a later duplicate wins, which no header we read has)."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


# A service's health routes as the contract has them under its prefix (/svc/board/health/live), served
# by the gateway for every backend: liveness is the gateway's own, readiness that backend's gRPC health.
# A route the service declares itself on one of these paths (auth's /health) wins.
HEALTH_LIVE = "/health/live"
HEALTH_READY = ("/health/ready", "/health")


async def _service_health(gateway: Gateway, verb: str, path: str) -> Response | None:
    """The answer of a service health route, or None when ``path`` is none."""
    target = split_prefix(path)
    if verb != "GET" or target is None or target[0] not in gateway.workloads:
        return None
    workload, canonical = target
    if canonical == HEALTH_LIVE:
        return JSONResponse({"status": "alive"})
    if canonical in HEALTH_READY:
        state = await _backend_state(gateway, workload)
        ok = state == "SERVING"
        body = {"status": "ready" if ok else "not_ready", "checks": {"grpc": state}}
        return JSONResponse(body, status_code=200 if ok else 503)
    return None


async def _unary(
    gateway: Gateway,
    backend: Backend,
    values: Mapping[str, str],
    request: Request,
    *,
    headers: Mapping[str, str],
    forwarded: tuple[tuple[str, str], ...],
    reply_headers: dict[str, str],
) -> Response:
    """A unary call: the user at the edge, the request message, the call, and its reply as HTTP."""
    route = backend.route
    settings = gateway.settings
    scope = request.scope
    request_id = reply_headers["x-request-id"]
    user = await gateway.user_token(route, presented_token(headers.get("authorization")))
    token = user.token if user else None
    if route.body:
        body = await read_body(
            request, settings.max_body_bytes, idle_seconds=settings.body_idle_timeout_seconds
        )
    else:
        body = b""
    raw_query = scope["query_string"]
    query = parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True) if raw_query else ()
    message = build_request(route, values, query, body)
    call = backend.call(
        message,
        timeout=gateway.deadline(route, headers.get("grpc-timeout")),
        metadata=outgoing_metadata(forwarded, request_id=request_id, token=token),
    )
    reply = await call
    if route.redirect_field:
        location = getattr(reply, route.redirect_field)
        response: Response = RedirectResponse(location, status_code=302, headers=reply_headers)
    else:
        # The service may pick another 2xx with x-http-code (the trailing metadata's wins); both
        # metadata have arrived with the reply, so reading them waits for nothing.
        status = (
            http_code(await call.trailing_metadata())
            or http_code(await call.initial_metadata())
            or route.success_status
        )
        if status in NO_CONTENT or route.success_status in NO_CONTENT:
            # No body: writing "{}" would break the keep-alive connection.
            response = Response(status_code=status, headers=reply_headers)
        else:
            payload = envelope(route, response_payload(route, reply), request_id)
            response = _json(payload, status, reply_headers)
    return response


async def api(gateway: Gateway, request: Request) -> Response:
    """Every REST call: route, check at the edge, transcode, call, wrap."""
    settings = gateway.settings
    started = time.perf_counter()
    scope = request.scope
    request_headers = _headers(scope)
    request_id = request_id_of(request_headers.get("x-request-id"))
    headers = {"x-request-id": request_id}
    label = "unmatched"
    try:
        # The path as sent: templates decode each variable themselves (%2F inside a segment stays in it).
        path = scope["raw_path"].decode("latin-1")
        found = gateway.find(scope["method"], path)
        if isinstance(found, HttpError):
            health = await _service_health(gateway, scope["method"], path)
            if health is not None:
                health.headers.update(headers)
                return health
            raise Refused(found)
        backend, values = found
        route = backend.route
        label = route.label
        forwarded = forwarded_headers(request_headers, limit=settings.max_forwarded_header_bytes)
        if route.stream == options_pb2.STREAM_TRANSPORT_SSE:
            return await streams.sse(
                gateway, backend, values, request, request_id=request_id, forwarded=forwarded
            )
        if route.stream == options_pb2.STREAM_TRANSPORT_WEBSOCKET or route.client_streaming:
            # A socket route reached without the upgrade (a browser tab, a fuzzer, a misconfigured proxy).
            headers["upgrade"] = "websocket"
            hint = "this route is a WebSocket: connect with an upgrade"
            raise Refused(HttpError(426, "UPGRADE_REQUIRED", hint))
        response = await _unary(
            gateway,
            backend,
            values,
            request,
            headers=request_headers,
            forwarded=forwarded,
            reply_headers=headers,
        )
    except Refused as stop:
        if stop.error.status == 408:
            headers["connection"] = "close"
        response = _json(stop.error.body(), stop.error.status, headers)
    except MeshError as error:
        failure = from_mesh_error(error)
        response = _json(failure.body(), failure.status, headers)
    except grpc.aio.AioRpcError as error:
        failure = from_rpc_error(error)
        response = _json(failure.body(), failure.status, headers)
    gateway.observe(scope["method"], label, response.status_code, time.perf_counter() - started)
    return response


async def socket(websocket: WebSocket) -> None:
    """Every WebSocket: a streaming route whose transport is WEBSOCKET, or closed with 4404."""
    gateway: Gateway = websocket.app.state.gateway
    try:
        found = gateway.find("GET", websocket.scope["raw_path"].decode("latin-1"))
    except MeshError as error:  # a path variable that is not UTF-8 once decoded
        await websocket.accept()
        await websocket.close(code=ws_close_code(from_mesh_error(error)))
        return
    if isinstance(found, HttpError) or found[0].route.stream != options_pb2.STREAM_TRANSPORT_WEBSOCKET:
        await websocket.close(code=4404)
        return
    await streams.websocket(gateway, found[0], found[1], websocket)


async def health(request: Request) -> Response:
    """Alive."""
    return JSONResponse({"status": "ok", "service": "gateway"})


async def ready(request: Request) -> Response:
    """Ready when every backend's gRPC health says SERVING."""
    gateway: Gateway = request.app.state.gateway
    states = {workload: await _backend_state(gateway, workload) for workload in gateway.workloads}
    ok = all(state == "SERVING" for state in states.values())
    return JSONResponse({"status": "ready" if ok else "not_ready", "backends": states}, 200 if ok else 503)


async def metrics(request: Request) -> Response:
    """Requests and latency by route template."""
    gateway: Gateway = request.app.state.gateway
    return Response(generate_latest(gateway.registry), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    """The OpenAPI 3.1 document, built once at start from the descriptors."""
    gateway: Gateway = request.app.state.gateway
    return JSONResponse(gateway.openapi)


async def docs_page(request: Request) -> Response:
    """Swagger UI over /openapi.json, its assets served from here."""
    return HTMLResponse(docs.docs_html("/openapi.json", "/docs/assets"))


def create_app(
    settings: GatewaySettings,
    *,
    services: Sequence[ServiceDescriptor] | None = None,
    addresses: Mapping[str, str] | None = None,
) -> GatewayApp:
    """The gateway application for these services (all of the platform's by default)."""
    # Whoever serves the app, uvicorn's lines never show a socket's ?token= (see gateway/redact.py).
    redact_uvicorn_logs()
    gateway = Gateway(
        settings, services if services is not None else list(all_services()), addresses=addresses
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await gateway.close()

    routes: list[Any] = [
        HttpRoute("/health", health),
        HttpRoute("/ready", ready),
        HttpRoute("/metrics", metrics),
        HttpRoute("/openapi.json", openapi),
        HttpRoute("/docs", docs_page),
        Mount("/docs/assets", app=StaticFiles(directory=docs.assets_directory())),
        WebSocketRoute("/api/{path:path}", socket),
        WebSocketRoute("/svc/{path:path}", socket),
    ]
    if settings.web_root is not None:
        routes += web_client_routes(settings)
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=[*HTTP_METHODS, "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "X-Workspace-Id", "Grpc-Timeout"],
            expose_headers=["X-Request-ID"],
            max_age=600,
        )
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={404: _http_exception, 405: _http_exception},
    )
    app.state.gateway = gateway
    return GatewayApp(gateway, app)


async def _http_exception(request: Request, error: Exception) -> Response:
    """Starlette's own 404 and 405 (a path outside every mount: ``/API/SVC/...``) in the error envelope."""
    status = error.status_code if isinstance(error, HTTPException) else 500
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(status, "INTERNAL")
    message = {404: "no such route", 405: f"{request.method} is not allowed here"}.get(
        status, "internal error"
    )
    failure = HttpError(status, code, message)
    return _json(failure.body(), failure.status, getattr(error, "headers", None) or {})


class GatewayApp:
    """The ASGI entry: API calls go straight to the transcoder, everything else to Starlette.

    The hot path skips Starlette's router and its three middlewares (measured: about a fifth of the
    gateway's own time per call); it applies the same CORS answer itself. Preflights, sockets, the
    gateway's own endpoints and the web root keep the full Starlette stack.

    At most ``max_concurrent_requests`` API calls and sockets run at once: one more is answered 503
    (a socket is refused with 1013, "try again later"), so that a flood of slow clients costs the
    gateway a counter, not memory. Its own endpoints (/health, /ready, /metrics) are not counted, so
    probes still answer under load.
    """

    def __init__(self, gateway: Gateway, fallback: Starlette) -> None:
        self.gateway = gateway
        self.fallback = fallback
        self.state = fallback.state
        self.origins = frozenset(gateway.settings.cors_origins)
        self.limit = gateway.settings.max_concurrent_requests
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        is_api = kind == "http" and scope["method"] != "OPTIONS" and split_prefix(scope["path"]) is not None
        counted = is_api or kind == "websocket"
        if not counted:
            await self.fallback(scope, receive, send)
            return
        if self.active >= self.limit:
            await _overloaded(scope, receive, send)
            return
        self.active += 1
        try:
            if is_api:
                await self._api(scope, receive, send)
            else:
                await self.fallback(scope, receive, send)
        finally:
            self.active -= 1

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await api(self.gateway, request)
        except Exception:
            log.exception("unhandled error in the gateway")
            failure = HttpError(500, "INTERNAL", "internal error")
            response = _json(failure.body(), failure.status, {})
        origin = request.headers.get("origin")
        if origin is not None and origin in self.origins:
            response.headers["access-control-allow-origin"] = origin
            response.headers["access-control-allow-credentials"] = "true"
            response.headers["access-control-expose-headers"] = "X-Request-ID"
            response.headers.append("vary", "Origin")
        await response(scope, receive, send)


async def _overloaded(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer past the concurrency limit: 503 in the envelope, or a socket refused with 1013."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1013})
        return
    failure = HttpError(503, "OVERLOADED", "the gateway is serving as many requests as it may; retry")
    await _json(failure.body(), failure.status, {"retry-after": "1"})(scope, receive, send)


async def _backend_state(gateway: Gateway, workload: str) -> str:
    check = gateway.channels.to(workload).unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    try:
        reply = await check(health_pb2.HealthCheckRequest(), timeout=gateway.settings.ready_timeout_seconds)
    except grpc.aio.AioRpcError as error:
        return error.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def web_client_routes(settings: GatewaySettings) -> list[Any]:
    """A built single-page client at /: its files, index.html for client-side routes, and /config.js."""
    root = settings.web_root
    assert root is not None
    files = StaticFiles(directory=root)

    async def config_js(request: Request) -> Response:
        # Mode A of the web client: API_BASE_URL "" makes it call /api/svc/<svc> on this same origin.
        return PlainTextResponse(
            'window.__ENV__ = {"API_BASE_URL": "", "API_DOMAIN": ""};\n', media_type="application/javascript"
        )

    async def spa(request: Request) -> Response:
        path = request.path_params.get("path", "")
        candidate = (root / path).resolve()
        if path and candidate.is_file() and candidate.is_relative_to(root.resolve()):
            return await files.get_response(path, request.scope)
        return HTMLResponse((root / "index.html").read_text())

    return [HttpRoute("/config.js", config_js), HttpRoute("/{path:path}", spa)]
