"""What the notification tests share: events, an SSE reader and /metrics samples (people: tests.support)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from wealist.noti.v1 import internal_pb2, internal_pb2_grpc

from tests.support import NOTI, Mesh

STREAM = f"{NOTI}/api/notifications/stream"


def internal_stub(
    mesh: Mesh, *, as_workload: str = "board"
) -> internal_pb2_grpc.NotificationInternalServiceAsyncStub:
    """The internal API of the stack's noti, dialled as ``as_workload``."""
    return internal_pb2_grpc.NotificationInternalServiceStub(mesh.channel("noti", as_workload=as_workload))


def event(
    target: str,
    *,
    actor: str | None = None,
    workspace: str | None = None,
    kind: str = "BOARD_ASSIGNED",
    key: str = "",
    name: str = "Card",
) -> internal_pb2.NotificationEvent:
    """A valid NotificationEvent for ``target``."""
    message = internal_pb2.NotificationEvent(
        type=kind,
        actor_id=actor or str(uuid.uuid4()),
        target_user_id=target,
        workspace_id=workspace or str(uuid.uuid4()),
        resource_type="board",
        resource_id=str(uuid.uuid4()),
        resource_name=name,
        idempotency_key=key,
    )
    message.metadata.update({"projectId": "p-1", "projectName": "Apollo"})
    return message


async def create(mesh: Mesh, item: internal_pb2.NotificationEvent) -> internal_pb2.CreateResult:
    """Create one notification as board."""
    reply = await internal_stub(mesh).CreateNotification(
        internal_pb2.CreateNotificationRequest(event=item), timeout=10
    )
    return reply.result


async def metric(client: httpx.AsyncClient, metrics_url: str, name: str) -> float:
    """One unlabelled sample of a service's /metrics."""
    reply = await client.get(metrics_url)
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    raise AssertionError(f"{name} not in {metrics_url}")


async def wait_metric(
    client: httpx.AsyncClient,
    metrics_url: str,
    name: str,
    *,
    at_least: float = 0,
    at_most: float | None = None,
) -> float:
    """Poll a gauge until it is within bounds (10 s at most)."""
    value = 0.0
    for _ in range(200):
        value = await metric(client, metrics_url, name)
        if value >= at_least and (at_most is None or value <= at_most):
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} stayed at {value}")


@dataclass
class SseClient:
    """An EventSource-like reader of the notification stream: events land in ``events`` with their time."""

    client: httpx.AsyncClient
    token: str
    url: str = STREAM
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    events: asyncio.Queue[tuple[str, Any, float]] = field(default_factory=asyncio.Queue)
    status: int | None = None
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with self.client.stream("GET", self.url, params={"token": self.token}, timeout=None) as reply:
            self.status = reply.status_code
            name = ""
            async for line in reply.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    if name == "connected":
                        self.connected.set()
                    else:
                        await self.events.put((name, json.loads(line[6:]), time.perf_counter()))

    async def __aenter__(self) -> SseClient:
        self._task = asyncio.create_task(self._run())
        waiter = asyncio.create_task(self.connected.wait())
        await asyncio.wait({waiter, self._task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if not self.connected.is_set():
            waiter.cancel()
            await self.close()
            raise AssertionError(f"the stream did not connect (HTTP {self.status})")
        return self

    async def next(self, seconds: float = 5.0) -> tuple[str, Any, float]:
        """The next event, within ``seconds``."""
        return await asyncio.wait_for(self.events.get(), seconds)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self._task

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


@contextlib.asynccontextmanager
async def streams(client: httpx.AsyncClient, tokens: list[str]) -> AsyncIterator[list[SseClient]]:
    """Several open streams at once."""
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(SseClient(client, token)) for token in tokens]
