"""Prometheus metrics with the names the gRPC ecosystem uses (go-grpc-prometheus)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


def _grpc_type(client_streaming: bool, server_streaming: bool) -> str:
    if client_streaming and server_streaming:
        return "bidi_stream"
    if client_streaming:
        return "client_stream"
    if server_streaming:
        return "server_stream"
    return "unary"


def split_method(path: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` → (``pkg.Service``, ``Method``)."""
    _, service, method = path.split("/", 2)
    return service, method


@dataclass
class ServerMetrics:
    """The server-side gRPC metrics of one process, in their own registry."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        self.started = Counter(
            "grpc_server_started_total", "RPCs started on the server.", labels, registry=self.registry
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, regardless of success or failure.",
            [*labels, "grpc_code"],
            registry=self.registry,
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time the server took to handle an RPC, until its status was sent.",
            labels,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def record_start(self, path: str, client_streaming: bool, server_streaming: bool) -> tuple[str, str, str]:
        """Count a started RPC; returns the label values to pass to ``record_end``."""
        service, method = split_method(path)
        labels = (_grpc_type(client_streaming, server_streaming), service, method)
        self.started.labels(*labels).inc()
        return labels

    def record_end(self, labels: tuple[str, str, str], code: str, seconds: float) -> None:
        """Count a finished RPC with its status code name (``OK``, ``NOT_FOUND``...)."""
        self.handled.labels(*labels, code).inc()
        self.handling_seconds.labels(*labels).observe(seconds)
