"""Settings of the REST gateway."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from mesh import GATEWAY_HTTP_PORT, PUBLIC_IN_PRODUCTION, MeshSettings


class GatewaySettings(MeshSettings):
    """Where it listens, whom it lets in, and how long it waits."""

    workload: str = "gateway"
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
    # Seconds between SSE keep-alive comments.
    sse_ping_seconds: float = 30.0
    # How often an open stream (SSE, WebSocket) checks that its token was not revoked nor its account
    # deleted since it opened; it ends when either happened. Expiry is not checked: clients reconnect.
    stream_recheck_seconds: float = 30.0
    # A built single-page web client to serve at / (index.html fallback and /config.js).
    web_root: Path | None = None
    # Trusted to pass browsers' X-Forwarded-For etc.; the gateway itself never trusts them for identity.
    ready_timeout_seconds: float = 2.0

    def deadline_for(self, workload: str) -> float:
        """Default deadline of unary calls to ``workload``."""
        return self.deadline_overrides.get(workload, self.default_deadline_seconds)
