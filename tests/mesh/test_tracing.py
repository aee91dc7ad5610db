"""Tracing stays off without an OTLP endpoint: no tracer, no spans, the caller's traceparent passed on.

That it works when on, across processes, is tests/integration/test_traces.py.
"""

from __future__ import annotations

from opentelemetry import trace

from mesh import current_traceparent, server_span, setup_tracing, tracer


def test_without_an_endpoint_nothing_is_set_up() -> None:
    assert setup_tracing("board", environ={}) is False
    assert tracer() is None
    assert server_span("/x.v1.S/M", {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}) is None
    assert current_traceparent() is None
    # No SDK provider was installed: the API's default, which records nothing.
    assert not trace.get_tracer_provider().get_tracer("t").start_span("s").is_recording()


def test_an_empty_endpoint_is_no_endpoint() -> None:
    assert setup_tracing("board", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": ""}) is False
    assert tracer() is None
