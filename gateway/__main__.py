"""``python -m gateway``: the REST gateway."""

from __future__ import annotations

from starlette.types import ASGIApp

from gateway.app import create_app
from gateway.redact import redact_process_logs
from gateway.server import GatewayServer, server_config
from gateway.settings import GatewaySettings
from gateway.tracing import TracedGateway
from mesh import configure_logging, load_settings, setup_tracing


def main() -> None:
    """Entry point: uvicorn with uvloop and httptools (and the gateway's limits) on its HTTP port."""
    settings = load_settings(GatewaySettings)
    configure_logging(settings.workload, level=settings.log_level, json_lines=settings.log_json)
    app: ASGIApp = create_app(settings)
    if setup_tracing(settings.workload):
        app = TracedGateway(app)
    # Socket URLs carry ?token=<JWT>, and uvicorn logs every WebSocket's URL: never the token.
    redact_process_logs()
    config = server_config(
        app,
        settings,
        host=settings.bind_host,
        port=settings.http_port or 8088,
        loop="uvloop",
        timeout_graceful_shutdown=5,
    )
    GatewayServer(config).run()


if __name__ == "__main__":
    main()
