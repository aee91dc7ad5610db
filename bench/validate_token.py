"""ValidateToken latency over mTLS, against gRPC health Check on the same channel as the baseline.

``nox -s bench`` (or ``python -m bench.validate_token [CALLS]``) starts the platform on embedded servers,
logs a user in, then makes CALLS sequential calls of each kind as the ``board`` workload and prints
p50/p99 for both, their ratio, the resident memory of each service process, and the time the stack took
to become healthy. The baseline is the cheapest call the same server answers through the same
interceptor chain and TLS channel, so the ratio is the cost of token verification itself.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from grpc_health.v1 import health_pb2
from wealist.auth.v1 import auth_pb2, auth_pb2_grpc

from devstack import Stack, pick_port_offset
from mesh import load_tls, open_channel

log = logging.getLogger("bench")


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _time_calls(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    for _ in range(min(100, count)):  # warm-up: connections, caches, JIT-free but cache-warm
        await call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _measure(state: Path, address: str, count: int) -> tuple[list[float], list[float]]:
    gateway = open_channel(address, workload="auth", tls=load_tls(state, "gateway"))
    board = open_channel(address, workload="auth", tls=load_tls(state, "board"))
    try:
        pair = await auth_pb2_grpc.AuthServiceStub(gateway).IssueTestToken(
            auth_pb2.IssueTestTokenRequest(email="bench@example.com")
        )
        validate = auth_pb2_grpc.AuthServiceStub(board).ValidateToken
        request = auth_pb2.ValidateTokenRequest(token=pair.access_token)
        check = board.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        baseline = await _time_calls(lambda: check(health_pb2.HealthCheckRequest()), count)
        measured = await _time_calls(lambda: validate(request), count)
        return baseline, measured
    finally:
        await gateway.close()
        await board.close()


def _report(name: str, samples: list[float]) -> tuple[float, float]:
    p50, p99 = _percentile(samples, 0.50) * 1000, _percentile(samples, 0.99) * 1000
    mean = statistics.fmean(samples) * 1000
    sys.stdout.write(f"{name:<28} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   mean {mean:7.3f} ms\n")
    return p50, p99


def main() -> None:
    """Run the benchmark and print the figures."""
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory(prefix="wealist-bench-") as tmp:
        stack = Stack(
            Path(tmp),
            port_offset=pick_port_offset(),
            extra_env={"AUTH_TEST_LOGIN_ENABLED": "true"},
            output=lambda line: None,
        )
        with stack as info:
            baseline, measured = asyncio.run(_measure(info.state_dir, info.services["auth"].addr, count))
            rss = {name: _rss_mib(pid) for name, pid in stack.supervisor.pids().items()}
        sys.stdout.write(f"{count} sequential calls each, over mTLS, one channel, as workload 'board'\n")
        base50, base99 = _report("baseline: Health/Check", baseline)
        p50, p99 = _report("AuthService/ValidateToken", measured)
        sys.stdout.write(f"ratio ValidateToken/baseline: p50 x{p50 / base50:.2f}   p99 x{p99 / base99:.2f}\n")
        sys.stdout.write(f"stack healthy after {info.startup_seconds:.2f} s (embedded servers, new state)\n")
        for name, mib in rss.items():
            sys.stdout.write(f"resident memory {name:<8} {mib:6.1f} MiB\n")


if __name__ == "__main__":
    main()
