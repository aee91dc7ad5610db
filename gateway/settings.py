"""Settings of the REST gateway."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from gateway.mounts import GATEWAY_WORKLOAD
from mesh import GATEWAY_HTTP_PORT, PUBLIC_IN_PRODUCTION, MeshSettings


class GatewaySettings(MeshSettings):
    """Where it listens, whom it lets in, and how long it waits."""

    workload: str = GATEWAY_WORKLOAD
    http_port: int | None = GATEWAY_HTTP_PORT
    # Browser origins allowed to call the API with credentials (the web client's dev servers by default).
    cors_origins: list[str] = Field(
        default=["http://localhost:8088", "http://localhost:3000", "http://localhost:5173"],
        validation_alias=AliasChoices("WEALIST_CORS_ORIGINS", "CORS_ORIGINS"),
        json_schema_extra=PUBLIC_IN_PRODUCTION,
    )
    max_body_bytes: int = 1 << 20
    # Per-workload default deadline of unary calls when the client sends no Grpc-Timeout.
    default_deadline_seconds: float = 30.0
    deadline_overrides: dict[str, float] = Field(default_factory=lambda: {"storage": 120.0})
    # The longest deadline a client may ask for with Grpc-Timeout, per workload: a longer one is cut to
    # this (a client cannot hold a backend's call open for hours). Never below the workload's default.
    max_deadline_seconds: float = 60.0
    max_deadline_overrides: dict[str, float] = Field(default_factory=lambda: {"storage": 300.0})
    # Slow clients: a request's headers must arrive within header_timeout_seconds of its first byte, and
    # its body may pause at most body_idle_timeout_seconds between chunks (then 408). At most
    # max_concurrent_requests API calls and sockets are served at once; the next one is a 503.
    header_timeout_seconds: float = 10.0
    body_idle_timeout_seconds: float = 10.0
    max_concurrent_requests: int = 1024
    # The largest WebSocket message a client may send (a larger one closes the socket with 1009).
    max_ws_message_bytes: int = 64 * 1024
    # The largest value of a header the gateway forwards as gRPC metadata (traceparent, tracestate,
    # X-Workspace-Id): a larger one is a 431, where the backend would refuse the metadata as a 429.
    max_forwarded_header_bytes: int = 1024
    # Seconds between SSE keep-alive comments.
    sse_ping_seconds: float = 30.0
    # How often an open stream (SSE, WebSocket) checks that its token has not expired, been revoked or
    # had its account deleted since it opened; it ends when any happened (the client reconnects with a
    # fresh token).
    stream_recheck_seconds: float = 30.0
    # A built single-page web client to serve at / (index.html fallback and /config.js).
    web_root: Path | None = None
    # How long /ready and a service's .../health/ready wait for a backend's gRPC health answer.
    ready_timeout_seconds: float = 2.0

    def deadline_for(self, workload: str) -> float:
        """Default deadline of unary calls to ``workload``."""
        return self.deadline_overrides.get(workload, self.default_deadline_seconds)

    def max_deadline_for(self, workload: str) -> float:
        """The longest deadline a client may ask for on ``workload`` (at least its default)."""
        longest = self.max_deadline_overrides.get(workload, self.max_deadline_seconds)
        return max(longest, self.deadline_for(workload))
