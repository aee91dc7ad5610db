"""Settings every workload reads from its environment, typed and built once in ``main()``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

# gRPC ports of DESIGN.md; each workload also serves /metrics and /health on its port + 100.
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
    namespace: str = "wealist"
    environment: Literal["dev", "test", "production"] = "dev"
    state_dir: Path = Path(".state")
    bind_host: str = "127.0.0.1"
    grpc_port: int | None = Field(default=None, description="None: the workload's default port.")
    http_port: int | None = Field(
        default=None, description="/health and /metrics; None: the gRPC port + 100."
    )
    # Kubernetes + Istio: plaintext to the sidecar, the caller read from x-forwarded-client-cert.
    istio_mode: bool = False
    log_level: str = "INFO"
    log_json: bool = True
    # The server's own limit on a unary call whose client set no deadline. (The gateway's
    # ``default_deadline_seconds`` is another thing: the deadline it sets on the calls it makes.)
    server_deadline_seconds: float = 30.0
    grace_seconds: float = 5.0
    jwt_issuer: str = "wealist-auth-service"

    auth_addr: str = f"127.0.0.1:{DEFAULT_PORTS['auth']}"
    user_addr: str = f"127.0.0.1:{DEFAULT_PORTS['user']}"
    board_addr: str = f"127.0.0.1:{DEFAULT_PORTS['board']}"
    chat_addr: str = f"127.0.0.1:{DEFAULT_PORTS['chat']}"
    noti_addr: str = f"127.0.0.1:{DEFAULT_PORTS['noti']}"
    storage_addr: str = f"127.0.0.1:{DEFAULT_PORTS['storage']}"
    ops_addr: str = f"127.0.0.1:{DEFAULT_PORTS['ops']}"

    redis_url: str = Field(default="redis://127.0.0.1:16379/0", validation_alias="REDIS_URL")
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:15432/postgres", validation_alias="DATABASE_URL"
    )
    migrate_on_start: bool = True

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
