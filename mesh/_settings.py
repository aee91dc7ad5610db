"""Settings every workload reads from its environment, typed and built once in ``main()``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from mesh._production import REQUIRED_IN_PRODUCTION, production_problems

# The gRPC port of each workload (docs/architecture.md); each also serves /metrics and /health on port + 100.
DEFAULT_PORTS: dict[str, int] = {
    "auth": 8080,
    "user": 8081,
    "board": 8000,
    "chat": 8001,
    "noti": 8002,
    "storage": 8003,
    "ops": 8004,
}
WORKLOADS: tuple[str, ...] = tuple(DEFAULT_PORTS)
HTTP_PORT_OFFSET = 100
# The REST gateway's HTTP port (it serves no gRPC, so it is not in DEFAULT_PORTS).
GATEWAY_HTTP_PORT = 8088


class MeshSettings(BaseSettings):
    """What the shared runtime needs; services subclass it for their own settings."""

    model_config = SettingsConfigDict(env_prefix="WEALIST_", extra="ignore", frozen=True)

    workload: str = Field(description="This process's workload (service account) name.")
    # The Kubernetes namespace: part of every SPIFFE identity the runtime checks.
    namespace: str = "wealist"
    # production refuses the dev defaults (see mesh/_production.py); test and dev accept them.
    environment: Literal["dev", "test", "production"] = "dev"
    # The dev stack's folder: its CA and certificates, auth's key ring when no Secret holds the key.
    state_dir: Path = Path(".state")
    # Istio forwards to the pod's IP: production listens on 0.0.0.0 (the manifests' ConfigMap says so).
    bind_host: str = Field(default="127.0.0.1", json_schema_extra=REQUIRED_IN_PRODUCTION)
    grpc_port: int | None = Field(default=None, description="None: the workload's default port.")
    http_port: int | None = Field(
        default=None, description="/health and /metrics; None: the gRPC port + 100."
    )
    # Kubernetes + Istio: plaintext to the sidecar, the caller read from x-forwarded-client-cert.
    istio_mode: bool = False
    # The root logger's level.
    log_level: str = "INFO"
    # One JSON object a line (requestId, traceId, spanId); false: plain text for a terminal.
    log_json: bool = True
    # The server's own limit on a unary call whose client set no deadline. (The gateway's
    # ``default_deadline_seconds`` is another thing: the deadline it sets on the calls it makes.)
    server_deadline_seconds: float = 30.0
    # At SIGTERM, how long calls in flight may finish before the server stops.
    grace_seconds: float = 5.0
    # The `iss` auth writes and every verifier expects.
    jwt_issuer: str = "wealist-auth-service"

    # Where each workload serves gRPC (host:port); the manifests give the Services' cluster names.
    auth_addr: str = Field(
        default=f"127.0.0.1:{DEFAULT_PORTS['auth']}", json_schema_extra=REQUIRED_IN_PRODUCTION
    )
    user_addr: str = Field(
        default=f"127.0.0.1:{DEFAULT_PORTS['user']}", json_schema_extra=REQUIRED_IN_PRODUCTION
    )
    board_addr: str = Field(
        default=f"127.0.0.1:{DEFAULT_PORTS['board']}", json_schema_extra=REQUIRED_IN_PRODUCTION
    )
    chat_addr: str = Field(
        default=f"127.0.0.1:{DEFAULT_PORTS['chat']}", json_schema_extra=REQUIRED_IN_PRODUCTION
    )
    noti_addr: str = Field(
        default=f"127.0.0.1:{DEFAULT_PORTS['noti']}", json_schema_extra=REQUIRED_IN_PRODUCTION
    )
    storage_addr: str = Field(
        default=f"127.0.0.1:{DEFAULT_PORTS['storage']}", json_schema_extra=REQUIRED_IN_PRODUCTION
    )
    ops_addr: str = Field(
        default=f"127.0.0.1:{DEFAULT_PORTS['ops']}", json_schema_extra=REQUIRED_IN_PRODUCTION
    )

    # The Redis every workload shares (revocations, caches, pub/sub, presence).
    redis_url: str = Field(
        default="redis://127.0.0.1:16379/0",
        validation_alias="REDIS_URL",
        json_schema_extra=REQUIRED_IN_PRODUCTION,
    )
    # The PostgreSQL server; each service keeps its own database on it (wealist_<workload>). Required in
    # production by the services that keep one (Runtime.database checks it).
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:15432/postgres", validation_alias="DATABASE_URL"
    )
    migrate_on_start: bool = True

    @model_validator(mode="after")
    def _refuse_dev_defaults_in_production(self) -> MeshSettings:
        if self.environment == "production":
            problems = production_problems(self)
            if problems:
                raise ValueError("production refuses the dev defaults:\n    " + "\n    ".join(problems))
        return self

    @model_validator(mode="after")
    def _fill_ports(self) -> MeshSettings:
        # frozen models are filled through object.__setattr__ once, at validation time.
        if self.grpc_port is None:
            object.__setattr__(self, "grpc_port", DEFAULT_PORTS.get(self.workload, 0))
        if self.http_port is None:
            port = self.grpc_port or 0
            object.__setattr__(self, "http_port", port + HTTP_PORT_OFFSET if port else 0)
        return self

    def address_of(self, workload: str) -> str:
        """host:port where another workload serves gRPC."""
        address: str = getattr(self, f"{workload}_addr")
        return address

    def service_database_url(self) -> str:
        """This service's own database on the configured server: ``wealist_<workload>``.

        ``DATABASE_URL`` names a server (any database on it); each service keeps its own database there.
        """
        url = make_url(self.database_url).set(
            drivername="postgresql+psycopg", database=f"wealist_{self.workload}"
        )
        return url.render_as_string(hide_password=False)
