"""The gateway's span per request, when tracing is on (``mesh.setup_tracing`` found an endpoint).

It wraps the whole ASGI app only then, so an untraced gateway runs exactly as before. The span is
parented by the browser's ``traceparent`` and named by the route template the router matched, and
:func:`gateway.metadata.outgoing_metadata` passes it on as the parent of the backend's span.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import HttpError
from mesh import MeshError, server_span

_TRACE_HEADERS = (b"traceparent", b"tracestate")


class TracedGateway:
    """An ASGI wrapper: one SERVER span per HTTP request or WebSocket."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def _name(self, scope: Scope) -> str:
        method = scope.get("method", "GET")
        gateway = getattr(getattr(self.app, "state", None), "gateway", None)
        if gateway is not None:
            try:
                found = gateway.find(method, scope["raw_path"].decode("latin-1"))
            except MeshError:  # a path variable that is not UTF-8: the request is answered a 400
                found = None
            if found is not None and not isinstance(found, HttpError):
                return f"{method} {found[0].route.label}"
        return f"{method} {scope['path']}" if scope["path"] in ("/health", "/ready") else method

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        carrier = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _TRACE_HEADERS
        }
        span = server_span(self._name(scope), carrier, **{"http.request.method": scope.get("method", "GET")})
        if span is None:
            await self.app(scope, receive, send)
            return
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if status:
                span.set_attribute("http.response.status_code", status)
            span.end(error=f"HTTP {status}" if status >= 500 else None)
