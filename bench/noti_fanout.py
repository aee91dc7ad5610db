"""Notification fan-out: internal create → SSE delivery through the gateway, with N clients connected.

``python -m bench.noti_fanout [CLIENTS] [NOTIFICATIONS]`` (``nox -s bench``) starts the platform on
embedded servers, logs one user in, opens CLIENTS SSE streams for that user through the gateway, then
creates NOTIFICATIONS notifications one after another over gRPC as the ``board`` workload and records,
for every (client, notification) pair, the time from the create call to the event reaching the client.
The baseline, measured in the same run, is the same delivery with a single client connected. It also
prints the resident memory of noti and the gateway before and after connecting the clients, divided
by CLIENTS. The clients run in this process on the same 2-core machine, so their own parsing is part
of the figure.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from wealist.noti.v1 import internal_pb2, internal_pb2_grpc

from devstack import Stack, StackInfo, pick_port_offset
from mesh import load_tls, open_channel

STREAM = "/api/svc/noti/api/notifications/stream"


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Listener:
    """One SSE client: records when each notification (by resource name) arrived."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.arrivals: dict[str, float] = {}

    async def run(self, client: httpx.AsyncClient, token: str) -> None:
        async with client.stream("GET", STREAM, params={"token": token}) as reply:
            async for line in reply.aiter_lines():
                if line.startswith("event: connected"):
                    self.connected.set()
                elif line.startswith("data: ") and '"resourceName"' in line:
                    name = line.split('"resourceName":"', 1)[1].split('"', 1)[0]
                    self.arrivals[name] = time.perf_counter()


async def _deliveries(
    info: StackInfo, pids: dict[str, int], token: str, user_id: str, *, clients: int, count: int
) -> tuple[list[float], dict[str, float]]:
    """Delivery latencies of every (client, notification), and noti's and the gateway's memory meanwhile."""
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    gateway = info.services["gateway"].http_base
    channel = open_channel(info.services["noti"].addr, workload="noti", tls=load_tls(info.state_dir, "board"))
    stub = internal_pb2_grpc.NotificationInternalServiceStub(channel)
    timeout = httpx.Timeout(None, connect=10)  # streams stay open as long as the round lasts
    async with httpx.AsyncClient(base_url=gateway, limits=limits, timeout=timeout) as client:
        listeners = [Listener() for _ in range(clients)]
        tasks = [asyncio.create_task(listener.run(client, token)) for listener in listeners]
        await asyncio.wait_for(asyncio.gather(*(lst.connected.wait() for lst in listeners)), 120)
        await asyncio.sleep(1.0)  # let every replica subscription settle
        sent: dict[str, float] = {}
        for number in range(count):
            name = f"fanout-{number}"
            event = internal_pb2.NotificationEvent(
                type="BOARD_ASSIGNED", actor_id=str(uuid.uuid4()), target_user_id=user_id,
                workspace_id=str(uuid.uuid4()), resource_type="board", resource_id=str(uuid.uuid4()),
                resource_name=name,
            )  # fmt: skip
            sent[name] = time.perf_counter()
            await stub.CreateNotification(internal_pb2.CreateNotificationRequest(event=event))
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)
        connected_rss = {name: _rss_mib(pids[name]) for name in ("noti", "gateway")}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await channel.close()
    latencies = [
        lst.arrivals[name] - sent[name] for lst in listeners for name in sent if name in lst.arrivals
    ]
    return latencies, connected_rss


async def _login(info: StackInfo) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=info.services["gateway"].http_base) as client:
        reply = await client.post("/api/svc/auth/api/test/token", json={"email": "fanout@example.com"})
        body = reply.json()
        return str(body["accessToken"]), str(body["userId"])


def main() -> None:
    """Run the benchmark and print the figures."""
    clients = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    with tempfile.TemporaryDirectory(prefix="wealist-fanout-") as tmp:
        env = {"AUTH_TEST_LOGIN_ENABLED": "true"}
        stack = Stack(Path(tmp), port_offset=pick_port_offset(), extra_env=env, output=lambda line: None)
        with stack as info:
            pids = stack.supervisor.pids()
            token, user_id = asyncio.run(_login(info))
            args = (info, pids, token, user_id)
            baseline, before = asyncio.run(_deliveries(*args, clients=1, count=count))
            measured, after = asyncio.run(_deliveries(*args, clients=clients, count=count))
    expected = clients * count
    out = sys.stdout
    out.write(f"{count} notifications, one every 0.2 s, to one user; SSE through the gateway; 2 cores\n")
    for label, samples, total in (
        ("baseline: 1 client", baseline, count),
        (f"{clients} clients", measured, expected),
    ):
        p50, p99 = _percentile(samples, 0.5) * 1000, _percentile(samples, 0.99) * 1000
        out.write(f"{label:<22} delivered {len(samples)}/{total}   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms\n")
    for name in ("noti", "gateway"):
        per_client = (after[name] - before[name]) * 1024 / max(clients - 1, 1)
        out.write(
            f"resident memory {name:<8} {before[name]:6.1f} MiB with 1 client -> {after[name]:6.1f} MiB with "
            f"{clients}: {per_client:5.1f} KiB per client\n"
        )


if __name__ == "__main__":
    main()
