"""The runtime's pub/sub hub against the test Redis: fan-out, subscription bookkeeping, overflow, the
SUBSCRIBE confirmation a new listener waits for, and what a broken connection does to open listeners."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from prometheus_client import CollectorRegistry

from mesh import ChannelHub, ResourceExhausted, Subscriber, Unavailable

SECONDS = 5.0


class Decoder:
    """A decode hook that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, data: bytes | str) -> str:
        self.calls += 1
        return data.decode() if isinstance(data, bytes) else data


@contextlib.asynccontextmanager
async def running(
    rds: redis.asyncio.Redis, *, queue_size: int = 16, confirm_seconds: float = 5.0
) -> AsyncIterator[tuple[ChannelHub[str], Decoder, CollectorRegistry]]:
    decoder = Decoder()
    registry = CollectorRegistry()
    hub: ChannelHub[str] = ChannelHub(
        rds,
        name="test",
        decode=decoder,
        queue_size=queue_size,
        metrics="test_hub",
        registry=registry,
        confirm_seconds=confirm_seconds,
        retry_seconds=0.05,
    )
    await hub.start()
    try:
        yield hub, decoder, registry
    finally:
        await hub.close()


def _channel() -> str:
    return f"test:{uuid.uuid4().hex}"


def _gauge(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name) or 0.0


async def _numsub(rds: redis.asyncio.Redis, channel: str) -> int:
    ((_, count),) = await rds.pubsub_numsub(channel)
    return int(count)


async def _eventually_numsub(rds: redis.asyncio.Redis, channel: str, count: int) -> int:
    found = -1
    for _ in range(int(SECONDS / 0.02)):
        found = await _numsub(rds, channel)
        if found == count:
            break
        await asyncio.sleep(0.02)
    return found


async def _next(subscriber: Subscriber[str]) -> str | None:
    return await asyncio.wait_for(subscriber.get(), SECONDS)


async def test_each_listener_gets_each_message_once_decoded_once(rds: redis.asyncio.Redis) -> None:
    channel, other = _channel(), _channel()
    async with (
        running(rds) as (hub, decoder, registry),
        contextlib.AsyncExitStack() as stack,
    ):
        listeners = [await stack.enter_async_context(hub.subscribe(channel)) for _ in range(10)]
        elsewhere = await stack.enter_async_context(hub.subscribe(other))
        assert (_gauge(registry, "test_hub_subscribers"), _gauge(registry, "test_hub_channels")) == (11, 2)
        assert hub.subscriber_count == 11
        assert hub.channel_count == 2
        # One subscription per channel for the whole replica, however many listeners.
        assert await _numsub(rds, channel) == 1
        for number in range(3):
            await rds.publish(channel, f"m-{number}")
        for listener in listeners:
            assert [await _next(listener) for _ in range(3)] == ["m-0", "m-1", "m-2"]
        # Decoded once per message, not once per listener; the other channel got nothing.
        assert decoder.calls == 3
        await rds.publish(other, "x")
        assert await _next(elsewhere) == "x"
        assert all(listener._queue.empty() for listener in listeners)


async def test_the_channel_is_unsubscribed_when_its_last_listener_leaves(rds: redis.asyncio.Redis) -> None:
    channel = _channel()
    async with running(rds) as (hub, _, registry):
        first_block = hub.subscribe(channel)
        first = await first_block.__aenter__()
        try:
            async with hub.subscribe(channel) as second:
                assert _gauge(registry, "test_hub_subscribers") == 2
                assert channel.encode() in await rds.pubsub_channels("test:*")
            # One listener left: still subscribed, and it still hears the channel.
            assert second.ended
            assert _gauge(registry, "test_hub_subscribers") == 1
            await asyncio.sleep(0.1)
            assert await _numsub(rds, channel) == 1
            await rds.publish(channel, "still here")
            assert await _next(first) == "still here"
        finally:
            await first_block.__aexit__(None, None, None)
        assert _gauge(registry, "test_hub_subscribers") == 0
        assert await _eventually_numsub(rds, channel, 0) == 0
        assert channel.encode() not in await rds.pubsub_channels("test:*")
        assert _gauge(registry, "test_hub_channels") == 0
        assert hub.channel_count == 0
        # Left and joined again at once: subscribed, not lost to the pending UNSUBSCRIBE.
        for _ in range(20):
            async with hub.subscribe(channel):
                pass
            async with hub.subscribe(channel) as again:
                await rds.publish(channel, "back")
                assert await _next(again) == "back"
        assert await _eventually_numsub(rds, channel, 0) == 0


async def test_a_cancelled_listener_leaves_nothing_behind(rds: redis.asyncio.Redis) -> None:
    async with running(rds) as (hub, _, registry):
        entered = asyncio.Event()

        async def listen(channel: str) -> None:
            async with hub.subscribe(channel) as subscriber:
                entered.set()
                await subscriber.get()

        channels = [_channel() for _ in range(25)]
        tasks = [asyncio.create_task(listen(channel)) for channel in channels for _ in range(2)]
        await entered.wait()
        await asyncio.sleep(0)  # some are still subscribing: cancelled halfway too
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert hub.subscriber_count == 0
        assert _gauge(registry, "test_hub_subscribers") == 0
        for channel in channels:
            assert await _eventually_numsub(rds, channel, 0) == 0
        assert hub.channel_count == 0


async def test_a_listener_that_falls_behind_is_closed_and_the_others_go_on(rds: redis.asyncio.Redis) -> None:
    channel = _channel()
    async with running(rds, queue_size=4) as (hub, _, _registry):
        async with hub.subscribe(channel) as slow, hub.subscribe(channel) as steady:
            for number in range(3):
                await rds.publish(channel, f"m-{number}")
            assert [await _next(steady) for _ in range(3)] == ["m-0", "m-1", "m-2"]
            # slow read nothing: three queued. Two more overflow it (the bound is 4).
            await rds.publish(channel, "m-3")
            await rds.publish(channel, "m-4")
            assert await _next(steady) == "m-3"
            assert await _next(steady) == "m-4"
            assert slow.ended
            # What was queued is dropped: the overflow is reported at once, and again on every read.
            for _ in range(2):
                with pytest.raises(ResourceExhausted) as overflow:
                    await _next(slow)
                assert overflow.value.code == "STREAM_OVERFLOW"
            await rds.publish(channel, "m-5")
            assert await _next(steady) == "m-5"
        assert await _eventually_numsub(rds, channel, 0) == 0


async def test_a_burst_beyond_the_bound_overflows_without_blocking_the_reader(
    rds: redis.asyncio.Redis,
) -> None:
    channel, other = _channel(), _channel()
    async with (
        running(rds, queue_size=8) as (hub, _, _registry),
        hub.subscribe(channel) as flooded,
        hub.subscribe(other) as bystander,
    ):
        async with rds.pipeline(transaction=False) as pipe:
            for number in range(500):
                pipe.publish(channel, f"m-{number}")
            pipe.publish(other, "after the burst")
            await pipe.execute()
        assert await _next(bystander) == "after the burst"
        with pytest.raises(ResourceExhausted):
            await _next(flooded)


async def test_a_listener_is_live_once_its_block_is_entered(rds: redis.asyncio.Redis) -> None:
    """Redis confirmed the SUBSCRIBE before the block starts: a message published right after arrives."""
    async with running(rds) as (hub, _, _registry):
        for number in range(50):
            channel = _channel()
            async with hub.subscribe(channel) as listener:
                assert await _numsub(rds, channel) == 1
                await rds.publish(channel, f"m-{number}")
                assert await _next(listener) == f"m-{number}"


async def test_a_new_listener_waits_for_the_confirmation(rds: redis.asyncio.Redis) -> None:
    """With the reader paused, the SUBSCRIBE is sent but its confirmation not read: nobody enters."""
    channel = _channel()
    async with running(rds) as (hub, _, _registry):
        assert hub._reader is not None
        hub._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await hub._reader
        entered: list[float] = []

        async def listen() -> None:
            async with hub.subscribe(channel) as listener:
                entered.append(time.monotonic())
                await listener.get()

        # The second arrives while the first one's SUBSCRIBE is on its way: it waits for the same one.
        first = asyncio.create_task(listen())
        await asyncio.sleep(0)
        second = asyncio.create_task(listen())
        await asyncio.sleep(0.3)
        assert entered == []
        assert await _numsub(rds, channel) == 1
        resumed = time.monotonic()
        hub._reader = asyncio.create_task(hub._read())
        for _ in range(100):
            if len(entered) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(entered) == 2
        assert max(entered) - resumed < 1.0  # the confirmation, not the 5 s bound
        await rds.publish(channel, "live")
        for task in (first, second):
            task.cancel()
        await asyncio.gather(first, second, return_exceptions=True)


async def test_the_wait_for_the_confirmation_is_bounded(
    rds: redis.asyncio.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(rds, confirm_seconds=0.3) as (hub, _, _registry):
        assert hub._reader is not None
        hub._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await hub._reader
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="wealist.mesh.pubsub"):
            async with hub.subscribe(_channel()):
                waited = time.monotonic() - started
        assert 0.25 < waited < 2.0
        assert "did not confirm" in caplog.text


async def _kill(rds: redis.asyncio.Redis, hub: ChannelHub[str]) -> None:
    """Close the hub's pub/sub connection from the server side, as a Redis restart would."""
    host, port = hub._pubsub.connection._writer.get_extra_info("sockname")[:2]  # type: ignore[attr-defined]
    await rds.client_kill(f"{host}:{port}")


async def test_a_broken_connection_ends_open_listeners_then_recovers(rds: redis.asyncio.Redis) -> None:
    channel, quiet = _channel(), _channel()
    async with running(rds) as (hub, _, registry):
        async with hub.subscribe(channel) as before, hub.subscribe(quiet) as bystander:
            await _kill(rds, hub)
            # Whatever was published during the gap is lost: every open listener is told so.
            for listener in (before, bystander):
                with pytest.raises(Unavailable) as interrupted:
                    await _next(listener)
                assert interrupted.value.code == "STREAM_INTERRUPTED"
            # redis-py reconnected and resubscribed; a new listener is live once it enters.
            async with hub.subscribe(channel) as after:
                assert await _numsub(rds, channel) == 1
                await rds.publish(channel, "after the reconnect")
                assert await _next(after) == "after the reconnect"
        assert _gauge(registry, "test_hub_subscribers") == 0
        assert await _eventually_numsub(rds, channel, 0) == 0
        assert await _eventually_numsub(rds, quiet, 0) == 0


async def test_a_channel_left_during_the_outage_is_not_resubscribed_for_good(
    rds: redis.asyncio.Redis,
) -> None:
    """Left while its UNSUBSCRIBE was unconfirmed, resubscribed by redis-py on reconnect: dropped again."""
    channel = _channel()
    async with running(rds) as (hub, _, registry):
        assert hub._reader is not None
        async with hub.subscribe(channel):
            hub._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hub._reader
        # The UNSUBSCRIBE went out, its confirmation is unread: redis-py still counts the channel as its.
        assert await _eventually_numsub(rds, channel, 0) == 0
        assert hub.channel_count == 0
        assert channel.encode() in hub._pubsub.channels
        # The connection drops before the confirmation is read (what was buffered is gone with it).
        await hub._pubsub.connection.disconnect()  # type: ignore[attr-defined]
        hub._reader = asyncio.create_task(hub._read())
        # The reader reconnects, redis-py resubscribes the channel, the hub drops it again.
        assert await _eventually_numsub(rds, channel, 0) == 0
        await asyncio.sleep(0.2)
        assert await _numsub(rds, channel) == 0
        assert _gauge(registry, "test_hub_channels") == 0
        async with hub.subscribe(channel) as again:
            await rds.publish(channel, "fine")
            assert await _next(again) == "fine"


async def test_closing_the_hub_ends_its_listeners(rds: redis.asyncio.Redis) -> None:
    async with running(rds) as (hub, _, _registry), hub.subscribe(_channel()) as listener:
        await hub.close()
        with pytest.raises(Unavailable):
            await _next(listener)
