"""The gateway's HTTP server: uvicorn, with the limits a server facing the internet needs.

- **Header timeout.** uvicorn waits for a request's headers forever, so a client sending one byte a
  minute holds a connection (and its memory) for as long as it likes. Here the headers must be complete
  within ``header_timeout_seconds`` of the request's first byte (or of the connection's opening): past
  that the connection is closed, with a 408 when part of a request had arrived.
- **Body idle timeout** and the **concurrency limit** are the application's (``gateway.app``): it
  knows which requests read a body and answers in the error envelope.
- **WebSocket messages** larger than ``max_ws_message_bytes`` close the socket with 1009 (uvicorn's
  default lets a client send 16 MiB, which the gateway would then parse).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.errors import HttpError
from gateway.jsonprint import encode
from gateway.settings import GatewaySettings

__all__ = ["GatewayServer", "header_timeout_protocol", "server_config"]


class _HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request's headers."""

    header_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._request_started = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_started = True
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._request_started = False
        super().on_headers_complete()

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._request_started:
            failure = HttpError(408, "REQUEST_TIMEOUT", "the request headers took too long")
            body = encode(failure.body())
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
            )
        self.transport.close()


def header_timeout_protocol(seconds: float) -> type[HttpToolsProtocol]:
    """The HTTP protocol class uvicorn instantiates per connection, with this header timeout."""
    return type("GatewayHttpProtocol", (_HeaderTimeoutProtocol,), {"header_timeout": seconds})


def server_config(app: Any, settings: GatewaySettings, **options: Any) -> uvicorn.Config:
    """A uvicorn configuration serving ``app`` with the gateway's limits; ``options`` go to uvicorn."""
    return uvicorn.Config(
        app,
        http=header_timeout_protocol(settings.header_timeout_seconds),
        ws_max_size=settings.max_ws_message_bytes,
        log_config=None,
        access_log=False,
        **options,
    )


class GatewayServer(uvicorn.Server):
    """uvicorn's server; ``quiet`` leaves the process's signal handlers alone (a test, an embedding)."""

    def __init__(self, config: uvicorn.Config, *, quiet: bool = False) -> None:
        super().__init__(config)
        self.quiet = quiet

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if self.quiet:
            yield
            return
        with super().capture_signals():
            yield
