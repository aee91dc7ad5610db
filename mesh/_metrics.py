"""Prometheus metrics with the names the gRPC ecosystem uses (go-grpc-prometheus)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

    def for_method(self, path: str, client_streaming: bool, server_streaming: bool) -> MethodMetrics:
        """The metrics of one method, with its labelled children looked up once rather than per call."""
        service, method = split_method(path)
        labels = (_grpc_type(client_streaming, server_streaming), service, method)
        return MethodMetrics(self, labels)


class MethodMetrics:
    """The started/handled/latency series of one served method."""

    __slots__ = ("_handled", "_labels", "_metrics", "_seconds", "_started")

    def __init__(self, metrics: ServerMetrics, labels: tuple[str, str, str]) -> None:
        self._metrics = metrics
        self._labels = labels
        self._started = metrics.started.labels(*labels)
        self._seconds = metrics.handling_seconds.labels(*labels)
        self._handled: dict[str, Any] = {}

    def start(self) -> None:
        """Count a started RPC."""
        self._started.inc()

    def end(self, code: str, seconds: float) -> None:
        """Count a finished RPC with its status code name (``OK``, ``NOT_FOUND``...)."""
        handled = self._handled.get(code)
        if handled is None:
            handled = self._handled[code] = self._metrics.handled.labels(*self._labels, code)
        handled.inc()
        self._seconds.observe(seconds)
