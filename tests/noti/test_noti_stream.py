"""The live stream: SSE through the gateway, delivery across replicas, and clean teardown.

A stream reports ``connected`` only once its user's channel is subscribed in Redis: a notification created
right after ``connected`` is delivered, even when the replica's link to Redis is slow.

The figures (delivery latency, memory per stream) are logged at INFO; run with
``-o log_cli=true --log-cli-level=INFO`` to see them. ``NOTI_STREAM_CYCLES`` overrides how many
connect/disconnect cycles the teardown test makes (the issue asks 1,000; the suite runs fewer to stay
quick).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx

from devstack import StackInfo
from tests.noti.support import STREAM, SseClient, create, event, metric, streams, wait_metric
from tests.support import Mesh, extra_service, in_process_gateway, login

log = logging.getLogger(__name__)

CYCLES = int(os.environ.get("NOTI_STREAM_CYCLES", "200"))
# Streams opened at once during the churn.
CONCURRENCY = 20
# What the churn may add to the resident memory of noti, all cycles together.
MEMORY_BOUND = 40 * 1024 * 1024
# Generous: the target is 1 s, measured and logged; the assertion only catches a broken path.
DELIVERY_BOUND = 5.0
SUBSCRIBERS = "noti_stream_subscribers"
CHANNELS = "noti_stream_channels"


def _summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"n={len(ordered)} p50={statistics.median(ordered) * 1000:.1f} ms p99={p99 * 1000:.1f} ms"


async def test_a_created_notification_arrives_on_the_stream(
    client: httpx.AsyncClient, mesh: Mesh, stack: StackInfo
) -> None:
    ann = await login(client)
    metrics_url = stack.services["noti"].metrics_url
    async with SseClient(client, ann.token) as stream:
        await wait_metric(client, metrics_url, SUBSCRIBERS, at_least=1)
        started = time.perf_counter()
        result = await create(mesh, event(ann.user_id, name="Ship it"))
        name, data, arrived = await stream.next(DELIVERY_BOUND)
    log.info("internal create → SSE through the gateway: %.1f ms", (arrived - started) * 1000)
    assert name == "notification"
    assert data["id"] == result.notification.id
    assert (data["resourceName"], data["targetUserId"], data["isRead"]) == ("Ship it", ann.user_id, False)
    assert data["metadata"] == {"projectId": "p-1", "projectName": "Apollo"}
    assert arrived - started < DELIVERY_BOUND


async def test_fan_out_latency_to_many_clients(
    client: httpx.AsyncClient, mesh: Mesh, stack: StackInfo
) -> None:
    """Each of 5 users with 2 streams; 40 notifications round-robin; every stream gets its user's."""
    people = [await login(client) for _ in range(5)]
    tokens = [person.token for person in people for _ in range(2)]
    metrics_url = stack.services["noti"].metrics_url
    latencies: list[float] = []
    async with streams(client, tokens) as open_streams:
        await wait_metric(client, metrics_url, SUBSCRIBERS, at_least=len(tokens))
        for number in range(40):
            person = people[number % len(people)]
            started = time.perf_counter()
            result = await create(mesh, event(person.user_id))
            for stream in open_streams[2 * (number % len(people)) : 2 * (number % len(people)) + 2]:
                _, data, arrived = await stream.next(DELIVERY_BOUND)
                assert data["id"] == result.notification.id
                latencies.append(arrived - started)
        assert all(stream.events.empty() for stream in open_streams)
    log.info("fan-out, %d streams: %s", len(tokens), _summary(latencies))


async def test_delivery_across_replicas(client: httpx.AsyncClient, mesh: Mesh, stack: StackInfo) -> None:
    """Created on replica A (the stack's noti), delivered to a client of replica B (another process)."""
    ann = await login(client)
    with extra_service(stack, "noti", {}) as replica:
        async with in_process_gateway(stack, noti=replica.addr) as base:
            async with (
                httpx.AsyncClient(base_url=base, timeout=10) as via_b,
                SseClient(via_b, ann.token) as stream,
            ):
                replica_metrics = replica.spec.metrics_url
                assert await wait_metric(via_b, replica_metrics, SUBSCRIBERS, at_least=1) == 1
                assert await metric(client, stack.services["noti"].metrics_url, CHANNELS) == 0
                started = time.perf_counter()
                result = await create(mesh, event(ann.user_id, name="from A"))
                name, data, arrived = await stream.next(DELIVERY_BOUND)
                assert (name, data["id"]) == ("notification", result.notification.id)
                log.info("replica A → replica B → SSE: %.1f ms", (arrived - started) * 1000)
            await wait_metric(client, replica_metrics, SUBSCRIBERS, at_most=0)
            await wait_metric(client, replica_metrics, CHANNELS, at_most=0)


# How often the tests below connect and create at once.
RIGHT_AFTER_CONNECTED = 20
# The latency a slow link to Redis adds to what the replica sends (its SUBSCRIBE among it).
SLOW_LINK_SECONDS = 0.3


async def _created_right_after_connected(
    client: httpx.AsyncClient, via: httpx.AsyncClient, mesh: Mesh, times: int
) -> None:
    """Connect through ``via``; as soon as ``connected`` arrives, create a notification; it must arrive."""
    for _ in range(times):
        person = await login(client)  # a new user each time: a channel nobody has subscribed yet
        async with SseClient(via, person.token) as stream:
            result = await create(mesh, event(person.user_id))
            name, data, _ = await stream.next(DELIVERY_BOUND)
            assert (name, data["id"]) == ("notification", result.notification.id)


async def test_a_notification_created_right_after_connected_is_delivered(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    await _created_right_after_connected(client, client, mesh, RIGHT_AFTER_CONNECTED)


@contextlib.asynccontextmanager
async def _slow_link(redis_url: str, delay: float) -> AsyncIterator[str]:
    """A TCP proxy to Redis that delivers what its clients send ``delay`` seconds late (in order).

    Yields the Redis URL through it.
    """
    target = urlsplit(redis_url)
    handlers: set[asyncio.Task[None]] = set()
    pumping: set[asyncio.Task[None]] = set()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, late: float) -> None:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, chunk = await chunks.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not chunk:
                    return
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.create_task(send())
        try:
            while chunk := await reader.read(65536):
                chunks.put_nowait((loop.time() + late, chunk))
            chunks.put_nowait((loop.time() + late, b""))
            await sender
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def handle(down_reader: asyncio.StreamReader, down_writer: asyncio.StreamWriter) -> None:
        # Never cancelled itself (asyncio's server callback would log that as an error): the exit below
        # cancels its pumps instead, and it closes both ends.
        this = asyncio.current_task()
        assert this is not None
        handlers.add(this)
        up_reader, up_writer = await asyncio.open_connection(target.hostname, target.port)
        pumps = {
            asyncio.create_task(forward(down_reader, up_writer, delay)),
            asyncio.create_task(forward(up_reader, down_writer, 0.0)),
        }
        pumping.update(pumps)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        pumping.difference_update(pumps)
        for writer in (up_writer, down_writer):
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        handlers.discard(this)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield target._replace(netloc=f"127.0.0.1:{port}").geturl()
    finally:
        server.close()
        for pump in list(pumping):
            pump.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def test_connected_waits_for_the_subscription_on_a_slow_link_to_redis(
    client: httpx.AsyncClient, mesh: Mesh, stack: StackInfo
) -> None:
    """Replica B reaches Redis through a link that delays its commands; notifications are published by A.

    Were ``connected`` sent before Redis confirmed B's SUBSCRIBE, the notification created right after it
    would be published (by A, straight to Redis) before the SUBSCRIBE got there, and be lost.
    """
    async with _slow_link(stack.redis_url, SLOW_LINK_SECONDS) as slow_url:
        # Started and stopped in a thread: it talks to Redis through the proxy, which runs on this loop.
        starting = extra_service(stack, "noti", {"REDIS_URL": slow_url})
        replica = await asyncio.to_thread(starting.__enter__)
        try:
            async with (
                in_process_gateway(stack, noti=replica.addr) as base,
                httpx.AsyncClient(base_url=base, timeout=10) as via_b,
            ):
                started = time.perf_counter()
                await _created_right_after_connected(client, via_b, mesh, RIGHT_AFTER_CONNECTED)
                log.info(
                    "connect + create + deliver over a %.0f ms link: %.2f s each",
                    SLOW_LINK_SECONDS * 1000,
                    (time.perf_counter() - started) / RIGHT_AFTER_CONNECTED,
                )
        finally:
            await asyncio.to_thread(starting.__exit__, None, None, None)


async def test_dropped_clients_release_their_resources(
    client: httpx.AsyncClient, mesh: Mesh, stack: StackInfo
) -> None:
    people = [await login(client) for _ in range(CONCURRENCY)]
    metrics_url = stack.services["noti"].metrics_url
    limits = httpx.Limits(max_connections=CONCURRENCY * 2, max_keepalive_connections=CONCURRENCY)

    async def churn(cycles: int) -> None:
        async with httpx.AsyncClient(base_url=str(client.base_url), timeout=10, limits=limits) as http:
            for _ in range(cycles // CONCURRENCY):
                async with streams(http, [person.token for person in people]):
                    pass

    await churn(CONCURRENCY * 2)  # warm-up: pools, caches and allocator arenas settle first
    await wait_metric(client, metrics_url, SUBSCRIBERS, at_most=0)
    before = await metric(client, metrics_url, "process_resident_memory_bytes")
    started = time.perf_counter()
    await churn(CYCLES)
    seconds = time.perf_counter() - started
    assert await wait_metric(client, metrics_url, SUBSCRIBERS, at_most=0) == 0
    assert await wait_metric(client, metrics_url, CHANNELS, at_most=0) == 0
    after = await metric(client, metrics_url, "process_resident_memory_bytes")
    log.info(
        "%d stream cycles in %.1f s; noti RSS %.1f → %.1f MiB",
        CYCLES,
        seconds,
        before / 2**20,
        after / 2**20,
    )
    assert after - before < MEMORY_BOUND
    # Still serving: a stream opened after the churn gets its notification.
    ann = people[0]
    async with SseClient(client, ann.token) as stream:
        await wait_metric(client, metrics_url, SUBSCRIBERS, at_least=1)
        result = await create(mesh, event(ann.user_id))
        assert (await stream.next(DELIVERY_BOUND))[1]["id"] == result.notification.id


async def test_the_stream_refuses_a_missing_token(client: httpx.AsyncClient) -> None:
    reply = await client.get(STREAM)
    assert reply.status_code == 401
    unknown = await client.get(STREAM, params={"token": uuid.uuid4().hex})
    assert unknown.status_code == 401
