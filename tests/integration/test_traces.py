"""Traces across the mesh: one board creation through the gateway is one trace, every hop in it.

A second stack runs beside the session's (on its Postgres, Redis and S3) with
``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a real OTLP receiver in this process: the collector's own
``TraceService`` from opentelemetry-proto, so what arrives is exactly what a collector (or Tempo) gets.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc
import httpx
import pytest
import pytest_asyncio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from devstack import StackInfo, pick_port_offset, run_stack
from tests.support import STACK_ENV, append_line, call, login, project, workspace

SERVER = trace_pb2.Span.SpanKind.SPAN_KIND_SERVER


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    """One exported span with the service that sent it."""

    service: str
    span: trace_pb2.Span

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_id(self) -> str:
        return self.span.parent_span_id.hex()

    def attribute(self, key: str) -> str | None:
        for attribute in self.span.attributes:
            if attribute.key == key:
                return str(attribute.value.string_value or attribute.value.int_value)
        return None


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()

    def Export(  # noqa: N802 - the generated servicer's method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            for resource_spans in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    ),
                    "?",
                )
                for scope_spans in resource_spans.scope_spans:
                    self.spans += [ReceivedSpan(service, span) for span in scope_spans.spans]
        return trace_service_pb2.ExportTraceServiceResponse()

    def of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self.spans if s.span.trace_id.hex() == trace_id]


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, int]]:
    found = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    # opentelemetry-proto ships its gRPC module without type hints.
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(found, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield found, port
    server.stop(grace=None)


@pytest.fixture(scope="module")
def traced_stack(
    stack: StackInfo, receiver: tuple[Receiver, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackInfo]:
    """The services and gateway again, exporting to the receiver; the session stack's servers."""
    _, port = receiver
    environ = {
        **os.environ,
        "DATABASE_URL": stack.database_url,
        "REDIS_URL": stack.redis_url,
        "S3_ENDPOINT": stack.s3.endpoint,
        "S3_ACCESS_KEY": stack.s3.access_key,
        "S3_SECRET_KEY": stack.s3.secret_key,
        "S3_BUCKET": stack.s3.bucket,
    }
    env = {
        **STACK_ENV,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        # Export within a tenth of a second rather than the default five.
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    state = tmp_path_factory.mktemp("traced-stack")
    with (
        (state / "services.log").open("a", encoding="utf-8") as log,
        run_stack(
            state, pick_port_offset(), env, environ=environ, output=lambda line: append_line(log, line)
        ) as info,
    ):
        yield info


@pytest_asyncio.fixture
async def traced_client(traced_stack: StackInfo) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=traced_stack.services["gateway"].http_base, timeout=15) as http:
        yield http


def _wait_for(receiver: Receiver, trace_id: str, services: set[str]) -> list[ReceivedSpan]:
    deadline = time.monotonic() + 20
    while True:
        spans = receiver.of_trace(trace_id)
        if services <= {s.service for s in spans} or time.monotonic() > deadline:
            return spans
        time.sleep(0.1)


def _only(spans: list[ReceivedSpan], service: str, kind: int = SERVER) -> ReceivedSpan:
    found = [s for s in spans if s.service == service and s.span.kind == kind]
    assert len(found) == 1, [(s.service, s.span.name) for s in spans]
    return found[0]


async def test_one_board_creation_is_one_trace_through_every_hop(
    traced_client: httpx.AsyncClient, receiver: tuple[Receiver, int]
) -> None:
    found, _ = receiver
    owner = await login(traced_client, "trace")
    workspace_id = await workspace(traced_client, owner)
    project_id = (await project(traced_client, owner, workspace_id))["projectId"]
    # A membership change empties the board's membership cache of this workspace, so the creation
    # below asks the user service again (a cached answer would rightly leave that hop out).
    await workspace(traced_client, owner)
    newcomer = await login(traced_client, "trace-member")
    invited = await traced_client.post(
        f"/api/svc/user/api/workspaces/{workspace_id}/members/invite",
        headers=owner.headers,
        json={"email": newcomer.email},
    )
    assert invited.status_code in (200, 201), invited.text

    trace_id, browser_span = secrets.token_hex(16), secrets.token_hex(8)
    await call(
        traced_client,
        "POST",
        "/api/boards",
        owner,
        status=201,
        json={"projectId": project_id, "title": "Traced", "content": "-"},
        headers={"traceparent": f"00-{trace_id}-{browser_span}-01"},
    )

    spans = _wait_for(found, trace_id, {"gateway", "board", "user"})
    gateway = _only(spans, "gateway")
    board = next(s for s in spans if s.service == "board" and s.span.name.endswith("/CreateBoard"))
    membership = [s for s in spans if s.service == "user" and s.span.kind == SERVER]
    assert gateway.parent_id == browser_span
    assert gateway.span.name == "POST /board/api/boards"  # the route label, as the metrics name it
    assert gateway.attribute("http.response.status_code") == "201"
    assert board.parent_id == gateway.span_id
    assert board.attribute("wealist.caller") == "gateway"
    assert membership, [(s.service, s.span.name) for s in spans]
    assert all(s.parent_id == board.span_id for s in membership)
    sql = [s for s in spans if s.service == "board" and s.attribute("db.system") == "postgresql"]
    assert any(s.parent_id == board.span_id and "INSERT" in s.span.name.upper() for s in sql), [
        (s.service, s.span.name, s.attribute("db.system")) for s in spans if s.service == "board"
    ]
