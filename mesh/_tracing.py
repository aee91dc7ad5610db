"""Traces across the mesh: W3C ``traceparent`` in, a span per served call, the span's id out.

Tracing is on only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the standard variable; the exporter
reads the rest of its ``OTEL_*`` settings itself). Then every workload exports its spans over OTLP/gRPC:
one SERVER span per gRPC call or gateway request, parented by the caller's ``traceparent``, and the
spans of every SQL statement, and the instrumentations' of Redis and S3 (urllib3, which the S3 client
uses) beneath.

Off, no provider, exporter or patch is installed and each call pays one dictionary look-up: the
runtime's interceptor and the gateway check :func:`tracer` and otherwise pass the caller's
``traceparent`` on untouched, so the log lines of every hop still carry the browser's trace id.

The spans are the runtime's own rather than the gRPC and ASGI instrumentations': the runtime already
holds the method, the caller and the final status of every call in one place, and wrapping each call
a second time would cost more than the few attributes set here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_NAMESPACE, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import event
from sqlalchemy.engine import Engine

log = logging.getLogger("wealist.mesh")

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
_PROPAGATOR = TraceContextTextMapPropagator()
_state: dict[str, Tracer] = {}


def tracer() -> Tracer | None:
    """The process's tracer when tracing is on, else None (the hot paths test exactly this)."""
    return _state.get("tracer")


def setup_tracing(workload: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on for this process when an OTLP endpoint is configured; whether it is on."""
    if "tracer" in _state:
        return True
    if not environ.get(ENDPOINT_VARIABLE):
        return False
    resource = Resource.create({SERVICE_NAME: workload, SERVICE_NAMESPACE: "wealist"})
    provider = TracerProvider(resource=resource)
    # An http:// endpoint means plaintext (a collector beside the pod); https:// means TLS.
    insecure = environ[ENDPOINT_VARIABLE].startswith("http://")
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(insecure=insecure)))
    trace.set_tracer_provider(provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    URLLib3Instrumentor().instrument(tracer_provider=provider)
    _state["tracer"] = provider.get_tracer("wealist.mesh")
    log.info("tracing to %s", environ[ENDPOINT_VARIABLE])
    return True


def shutdown_tracing() -> None:
    """Export what is still buffered (at a clean shutdown)."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if "tracer" in _state and shutdown is not None:
        shutdown()


def trace_engine(engine: Engine) -> None:
    """A CLIENT span per SQL statement of ``engine`` (the sync engine under an AsyncEngine), if on.

    The runtime's own listeners rather than the SQLAlchemy instrumentation, which refuses SQLAlchemy
    2.1. The span is a child of the served call's: SQLAlchemy runs the statement in a greenlet that
    carries the awaiting task's context.
    """
    active = _state.get("tracer")
    if active is None:
        return
    database = engine.url.database or ""

    # The cursor events pass (connection, cursor, statement, parameters, context, executemany).
    def started(*cursor_event: Any) -> None:
        statement: str = cursor_event[2]
        context = cursor_event[4]
        operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        context._wealist_span = active.start_span(
            f"{operation} {database}",
            kind=SpanKind.CLIENT,
            attributes={
                "db.system": "postgresql",
                "db.name": database,
                "db.operation": operation,
                # The statement with its placeholders: the parameters (user data) never go out.
                "db.statement": statement[:2048],
            },
        )

    def finished(*cursor_event: Any) -> None:
        span = getattr(cursor_event[4], "_wealist_span", None)
        if span is not None:
            span.end()

    def failed(exception_context: Any) -> None:
        span = getattr(exception_context.execution_context, "_wealist_span", None)
        if span is not None:
            span.set_status(Status(StatusCode.ERROR, type(exception_context.original_exception).__name__))
            span.end()

    event.listen(engine, "before_cursor_execute", started)
    event.listen(engine, "after_cursor_execute", finished)
    event.listen(engine, "handle_error", failed)


class ServerSpan:
    """The span of one served call or request, current while the call runs."""

    __slots__ = ("_span", "_token")

    def __init__(self, active: Tracer, name: str, carrier: Mapping[str, str], attributes: dict[str, Any]):
        parent = _PROPAGATOR.extract(carrier=carrier)
        self._span: Span = active.start_span(
            name, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._span, parent))

    @property
    def traceparent(self) -> str:
        """This span as the ``traceparent`` of the calls made while serving."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(self._span))
        return carrier["traceparent"]

    def set_attribute(self, key: str, value: str | int) -> None:
        """One more attribute (the final status, say)."""
        self._span.set_attribute(key, value)

    def end(self, *, error: str | None = None) -> None:
        """End the span, marked failed with ``error`` as its description."""
        if error is not None:
            self._span.set_status(Status(StatusCode.ERROR, error))
        self._span.end()
        otel_context.detach(self._token)


def server_span(name: str, carrier: Mapping[str, str], **attributes: str | int) -> ServerSpan | None:
    """A SERVER span parented by ``carrier``'s ``traceparent``; None when tracing is off."""
    active = _state.get("tracer")
    if active is None:
        return None
    return ServerSpan(active, name, carrier, attributes)


def current_traceparent() -> str | None:
    """The current span as a ``traceparent`` (tracing on and inside a span), else None."""
    if "tracer" not in _state:
        return None
    span = trace.get_current_span()
    if not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def log_ids(traceparent: str | None) -> tuple[str, str] | None:
    """``(traceId, spanId)`` for a log line: the current span's, else the caller's ``traceparent``."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")
    # Tracing off: the ids the caller sent, so the lines still join the browser's trace.
    if traceparent and len(traceparent) == 55 and traceparent[2] == "-" and traceparent[35] == "-":
        return traceparent[3:35], traceparent[36:52]
    return None
