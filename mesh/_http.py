"""The plain-HTTP side of every workload: ``/metrics`` for Prometheus and ``/health`` for probes."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator

import uvicorn
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp


def http_app(registry: CollectorRegistry, serving: Callable[[], bool], workload: str) -> Starlette:
    """/metrics in the format the scraper asks for, /health 200 while the gRPC side is serving."""

    async def metrics(request: Request) -> Response:
        if "application/openmetrics-text" in request.headers.get("accept", ""):
            return Response(openmetrics_latest(registry), media_type=OPENMETRICS_TYPE)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def health(request: Request) -> Response:
        ok = serving()
        body = {"status": "SERVING" if ok else "NOT_SERVING", "service": workload}
        return JSONResponse(body, status_code=200 if ok else 503)

    return Starlette(routes=[Route("/metrics", metrics), Route("/health", health)])


class _QuietServer(uvicorn.Server):
    """uvicorn inside a process that handles its own signals: it must not replace our handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def http_server(app: ASGIApp) -> uvicorn.Server:
    """A uvicorn server for the metrics app, without its own logging or signal handling."""
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", loop="none")
    return _QuietServer(config)
