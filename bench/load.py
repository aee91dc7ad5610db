"""The load generator the HTTP benchmarks share: keep-alive connections, sequential and concurrent rounds."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path


class HttpConnection:
    """One keep-alive HTTP/1.1 connection sending the same GET again and again (Content-Length replies).

    Hand-written on asyncio streams so that the client's own cost is small and the same for every server
    it measures; an HTTP library would weigh more than the servers under test.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> None:
        self.reader, self.writer = reader, writer
        self.request = request

    @classmethod
    async def open(cls, port: int, path: str, headers: Mapping[str, str] | None = None) -> HttpConnection:
        """A connection to 127.0.0.1:``port`` that will GET ``path`` with ``headers``."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        return cls(reader, writer, ("\r\n".join(lines) + "\r\n\r\n").encode())

    async def get(self) -> tuple[int, bytes]:
        """Status and body of one request."""
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"reply without Content-Length: {head!r}")
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        """Close the connection."""
        self.writer.close()
        await self.writer.wait_closed()


Call = Callable[[], Awaitable[object]]


@dataclass
class Result:
    """One round's throughput and latency percentiles."""

    requests_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests: int


def percentile(samples: list[float], fraction: float) -> float:
    """The sample below which ``fraction`` of the samples lie."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _result(samples: list[float], elapsed: float) -> Result:
    return Result(
        len(samples) / elapsed,
        percentile(samples, 0.50) * 1000,
        percentile(samples, 0.95) * 1000,
        percentile(samples, 0.99) * 1000,
        len(samples),
    )


async def sequential(call: Call, count: int) -> Result:
    """``count`` calls one after another, after a warm-up of a tenth as many."""
    for _ in range(max(1, count // 10)):
        await call()
    samples = []
    begun = time.perf_counter()
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return _result(samples, time.perf_counter() - begun)


async def interleaved(calls: Mapping[str, Call], count: int, rounds: int = 10) -> dict[str, Result]:
    """``count`` sequential calls of each of ``calls``, in ``rounds`` turns taken one after another.

    Sequential latencies on a shared machine drift over seconds; taking turns makes the drift weigh on
    every variant alike, so their difference holds up from run to run.
    """
    for call in calls.values():
        for _ in range(max(1, count // 10)):
            await call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    elapsed = dict.fromkeys(calls, 0.0)
    share = max(1, count // rounds)
    for _ in range(rounds):
        for name, call in calls.items():
            begun = time.perf_counter()
            for _ in range(share):
                started = time.perf_counter()
                await call()
                samples[name].append(time.perf_counter() - started)
            elapsed[name] += time.perf_counter() - begun
    return {name: _result(samples[name], elapsed[name]) for name in calls}


async def concurrent(calls: list[Call], seconds: float) -> Result:
    """One worker per call, each calling in a loop for ``seconds`` after a short warm-up."""
    samples: list[float] = []

    async def worker(call: Call, deadline: float, keep: bool) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            if keep:
                samples.append(time.perf_counter() - started)

    warm_until = time.perf_counter() + min(1.0, seconds / 5)
    await asyncio.gather(*(worker(call, warm_until, False) for call in calls))
    begun = time.perf_counter()
    await asyncio.gather(*(worker(call, begun + seconds, True) for call in calls))
    return _result(samples, time.perf_counter() - begun)


class CpuMeter:
    """CPU seconds that processes spend over a stretch of time, all their threads included.

    Throughput on a shared 2-core machine depends on how the scheduler splits the cores; the CPU each
    process spends per request does not, so it says where the time goes. Read from /proc (Linux);
    ``None`` stands for this process.
    """

    def __init__(self, processes: Mapping[str, int | None]) -> None:
        self.processes = dict(processes)
        self._ticks = os.sysconf("SC_CLK_TCK")

    def _seconds(self, pid: int | None) -> float:
        if pid is None:
            times = os.times()
            return times.user + times.system
        # Fields 14 and 15 (utime, stime), counted after the command name, which may hold spaces.
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / self._ticks

    def snapshot(self) -> dict[str, float]:
        """CPU seconds used so far, by process name."""
        return {name: self._seconds(pid) for name, pid in self.processes.items()}

    @staticmethod
    def per_request_us(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
        """Microseconds of CPU per request, by process name, between two snapshots."""
        return {name: (after[name] - before[name]) / max(requests, 1) * 1e6 for name in before}
