"""The notification service's parts on their own: the stream hub and the count cache against a real
Redis, queue overflow, and pruning against the stack's Postgres."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio
from prometheus_client import CollectorRegistry
from sqlmodel import col, select
from wealist.noti.v1 import noti_pb2

from devstack import StackInfo
from mesh import Database, ResourceExhausted
from services.noti import service
from services.noti.counts import UnreadCounts, count_key
from services.noti.events import OVERFLOW_MESSAGE, Hub, Subscriber, decode, publish
from services.noti.models import Notification
from services.noti.settings import NotiSettings


def _gauge(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name) or 0.0


async def _settled(registry: CollectorRegistry, name: str, value: float) -> None:
    for _ in range(100):
        if _gauge(registry, name) == value:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} is {_gauge(registry, name)}, not {value}")


async def test_an_overflowing_stream_ends_with_resource_exhausted() -> None:
    subscriber: Subscriber[noti_pb2.Notification] = Subscriber(2, overflow_message=OVERFLOW_MESSAGE)
    for number in range(5):
        subscriber.offer(noti_pb2.Notification(id=str(number)))
    assert subscriber.ended
    # What was queued is dropped: the stream ends at once, with the message the client is shown.
    for _ in range(2):
        with pytest.raises(ResourceExhausted, match="list what was missed") as ended:
            await subscriber.get()
        assert ended.value.code == "STREAM_OVERFLOW"


async def test_one_redis_subscription_per_user_and_released_with_the_last_stream(
    rds: redis.asyncio.Redis,
) -> None:
    registry = CollectorRegistry()
    hub = Hub(rds, queue_size=8, registry=registry)
    await hub.start()
    user = uuid.uuid4()
    try:
        async with hub.subscribe(user) as first, hub.subscribe(user) as second:
            assert _gauge(registry, "noti_stream_subscribers") == 2
            assert _gauge(registry, "noti_stream_channels") == 1
            assert await rds.pubsub_numsub(f"noti:user:{user}") == [(f"noti:user:{user}".encode(), 1)]
            await publish(rds, noti_pb2.Notification(id="n-1", target_user_id=str(user)))
            got = [await asyncio.wait_for(s.get(), 5) for s in (first, second)]
            assert [item.id for item in got if item] == ["n-1", "n-1"]
        assert _gauge(registry, "noti_stream_subscribers") == 0
        await _settled(registry, "noti_stream_channels", 0)
        assert await rds.pubsub_numsub(f"noti:user:{user}") == [(f"noti:user:{user}".encode(), 0)]
    finally:
        await hub.close()


async def test_a_stream_is_live_as_soon_as_it_is_subscribed(rds: redis.asyncio.Redis) -> None:
    """What the servicer relies on to send ``connected``: inside the block, Redis has the SUBSCRIBE."""
    hub = Hub(rds, queue_size=8, registry=CollectorRegistry())
    await hub.start()
    try:
        for number in range(20):
            user = uuid.uuid4()
            async with hub.subscribe(user) as stream:
                assert await rds.pubsub_numsub(f"noti:user:{user}") == [(f"noti:user:{user}".encode(), 1)]
                await publish(rds, noti_pb2.Notification(id=f"n-{number}", target_user_id=str(user)))
                got = await asyncio.wait_for(stream.get(), 5)
                assert got is not None
                assert got.id == f"n-{number}"
    finally:
        await hub.close()


def test_a_published_notification_decodes_to_itself() -> None:
    sent = noti_pb2.Notification(id="n-1", target_user_id=str(uuid.uuid4()), resource_name="Card")
    assert decode(sent.SerializeToString()) == sent


async def test_a_cancelled_stream_leaves_nothing_behind(rds: redis.asyncio.Redis) -> None:
    registry = CollectorRegistry()
    hub = Hub(rds, queue_size=8, registry=registry)
    await hub.start()
    entered = asyncio.Event()

    async def stream() -> None:
        async with hub.subscribe(uuid.uuid4()) as subscriber:
            entered.set()
            await subscriber.get()

    try:
        tasks = [asyncio.create_task(stream()) for _ in range(50)]
        await entered.wait()
        await _settled(registry, "noti_stream_subscribers", 50)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert hub.subscriber_count == 0
        await _settled(registry, "noti_stream_channels", 0)
    finally:
        await hub.close()


async def test_a_count_computed_before_a_change_is_never_served_after_it(rds: redis.asyncio.Redis) -> None:
    counts = UnreadCounts(rds, ttl_seconds=60)
    user = uuid.uuid4()
    calls = 0

    async def slow_stale() -> int:
        # A reader that counted before the change below, and writes its value after the invalidation.
        nonlocal calls
        calls += 1
        await counts.invalidate([user])
        return 7

    async def fresh() -> int:
        nonlocal calls
        calls += 1
        return 3

    assert await counts.get(user, None, slow_stale) == 7
    assert await counts.get(user, None, fresh) == 3
    assert await counts.get(user, None, fresh) == 3
    assert calls == 2  # the last one was a hit
    assert (await rds.get(count_key(user, None))) is not None


async def test_pruning_deletes_only_old_read_notifications(stack: StackInfo) -> None:
    settings = NotiSettings(database_url=stack.database_url)
    database = Database(settings.service_database_url())
    now = datetime.now(UTC)
    user = uuid.uuid4()

    def row(*, days: int, read: bool) -> Notification:
        return Notification(
            type="TASK_ASSIGNED",
            actor_id=uuid.uuid4(),
            target_user_id=user,
            workspace_id=uuid.uuid4(),
            resource_type="task",
            resource_id=uuid.uuid4(),
            is_read=read,
            read_at=now if read else None,
            created_at=now - timedelta(days=days),
        )

    old_read, new_read, old_unread = row(days=40, read=True), row(days=5, read=True), row(days=40, read=False)
    try:
        async with database.unit_of_work() as session:
            session.add_all([old_read, new_read, old_unread])
        async with database.unit_of_work() as session:
            pruned = await service.prune(session, retention=timedelta(days=30), now=now)
        assert pruned >= 1
        async with database.unit_of_work() as session:
            left = (
                await session.exec(select(Notification.id).where(col(Notification.target_user_id) == user))
            ).all()
        assert set(left) == {new_read.id, old_unread.id}
    finally:
        await database.close()
