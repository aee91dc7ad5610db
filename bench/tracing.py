"""What tracing costs per served call: off (no endpoint) against on (exporting to a real OTLP receiver).

``python -m bench.tracing [CALLS]`` (also in ``nox -s bench``) serves gRPC health through the runtime's
interceptor chain in a child process, once without ``OTEL_EXPORTER_OTLP_ENDPOINT`` and once with it set to
an OTLP TraceService receiver in this process, and makes CALLS sequential calls to each. It prints p50
latency and the server's CPU per call for both and their difference. The off path's own hooks (the two
look-ups every call makes when tracing is off) are also timed alone, in nanoseconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import timeit
from concurrent import futures

import grpc
from grpc_health.v1 import health_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from mesh import MeshSettings, Runtime, current_traceparent, spiffe_id, tracer

CALLER = (("x-forwarded-client-cert", f"By={spiffe_id('board')};URI={spiffe_id('gateway')}"),)


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0

    def Export(  # noqa: N802 - the generated servicer's method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        return trace_service_pb2.ExportTraceServiceResponse()


async def _serve_and_call(count: int) -> dict[str, float]:
    # Istio mode: plaintext and the caller from XFCC, so no certificates are needed for the bench.
    settings = MeshSettings(workload="board", istio_mode=True, grpc_port=0, http_port=0)
    runtime = Runtime(settings)
    started = asyncio.Event()
    serving = asyncio.create_task(runtime.serve([], started=started))
    await started.wait()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{runtime.grpc_port}")
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    request = health_pb2.HealthCheckRequest()
    for _ in range(min(200, count)):
        await check(request, metadata=CALLER)
    samples = []
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(count):
        began = time.perf_counter()
        await check(request, metadata=CALLER)
        samples.append(time.perf_counter() - began)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    await channel.close()
    runtime.request_stop()
    await serving
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {"p50_us": statistics.median(samples) * 1e6, "cpu_us": cpu / count * 1e6}


def _child(count: int) -> None:
    figures = asyncio.run(_serve_and_call(count))
    # The client shares the process: its CPU is the same in both runs, so differences are the server's.
    sys.stdout.write(json.dumps(figures) + "\n")


def _run_child(count: int, endpoint: str | None) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    done = subprocess.run(
        [sys.executable, "-m", "bench.tracing", "--child", str(count)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _off_hooks_ns() -> float:
    """The look-ups a call makes when tracing is off: the interceptor's and the gateway's."""
    assert tracer() is None
    rounds = 1_000_000
    seconds = timeit.timeit(lambda: (tracer(), current_traceparent()), number=rounds)
    empty = timeit.timeit(lambda: None, number=rounds)
    return (seconds - empty) / rounds * 1e9


def main() -> None:
    """Run both children and print the figures."""
    if sys.argv[1:2] == ["--child"]:
        _child(int(sys.argv[2]))
        return
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    receiver = _Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        off = _run_child(count, None)
        on = _run_child(count, f"http://127.0.0.1:{port}")
        time.sleep(1)
    finally:
        server.stop(grace=1)
    sys.stdout.write(f"{count} sequential gRPC Health/Check calls through the runtime's chain, one process\n")
    for name, figures in (("tracing off (baseline)", off), ("tracing on, OTLP export", on)):
        sys.stdout.write(
            f"{name:<26} p50 {figures['p50_us']:7.1f} us   CPU/call {figures['cpu_us']:7.1f} us\n"
        )
    sys.stdout.write(
        f"on/off: p50 x{on['p50_us'] / off['p50_us']:.2f} (+{on['p50_us'] - off['p50_us']:.1f} us), "
        f"CPU x{on['cpu_us'] / off['cpu_us']:.2f} (+{on['cpu_us'] - off['cpu_us']:.1f} us); "
        f"spans received: {receiver.spans}\n"
    )
    sys.stdout.write(f"the off path's own hooks per call: {_off_hooks_ns():.0f} ns\n")


if __name__ == "__main__":
    main()
