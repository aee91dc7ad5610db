"""Live delivery across replicas: Redis pub/sub, one channel per user, one subscription per replica.

A replica that stores a notification publishes it (after the commit) to ``noti:user:<target>``. Every
replica holds ONE Redis pub/sub connection (a :class:`Hub`), subscribed to the channels of the users
that have at least one open stream on it; a reader task parses each message once and hands it to that
user's local subscribers. The last stream of a user to leave unsubscribes the channel.

Bookkeeping of who listens is synchronous (no ``await``), so a cancelled stream always leaves the maps
clean; the Redis SUBSCRIBE/UNSUBSCRIBE that follow are reconciled under one lock against the wanted
set, so a user who leaves and comes back at once ends up subscribed, never lost.

Each subscriber has a bounded queue. A client that falls behind by more than the bound loses its
stream (the queue is emptied and the stream ends with RESOURCE_EXHAUSTED) instead of growing the
replica's memory; it reconnects and lists what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Gauge
from redis.asyncio.client import PubSub
from wealist.noti.v1 import noti_pb2

log = logging.getLogger("wealist.noti.events")

CHANNEL_PREFIX = "noti:user:"
# Pause before reading again after the pub/sub connection failed (redis-py reconnects and resubscribes).
RETRY_SECONDS = 0.5


def user_channel(user_id: uuid.UUID | str) -> str:
    """The pub/sub channel of one user's notifications."""
    return f"{CHANNEL_PREFIX}{user_id}"


async def publish(redis: aioredis.Redis, notification: noti_pb2.Notification) -> None:
    """Send a stored notification to its target's streams on every replica."""
    await redis.publish(user_channel(notification.target_user_id), notification.SerializeToString())


class Subscriber:
    """One open stream: a bounded queue of notifications; ``None`` in it ends the stream (overflow)."""

    __slots__ = ("overflowed", "queue")

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[noti_pb2.Notification | None] = asyncio.Queue(maxsize=size)
        self.overflowed = False

    def offer(self, notification: noti_pb2.Notification) -> None:
        """Queue a notification, or on overflow drop everything queued and leave only the end marker."""
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(notification)
        except asyncio.QueueFull:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class Hub:
    """The replica's one pub/sub connection and the local subscribers of each user channel."""

    def __init__(self, redis: aioredis.Redis, *, queue_size: int, registry: CollectorRegistry) -> None:
        self._pubsub: PubSub = redis.pubsub(ignore_subscribe_messages=True)
        self._queue_size = queue_size
        self._wanted: dict[str, set[Subscriber]] = {}
        self._subscribed: set[str] = set()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        # Subscribed for the hub's whole life, so the connection exists before any user channel and the
        # reader can block on it.
        self._own_channel = f"noti:hub:{uuid.uuid4().hex}"
        self.subscribers = Gauge(
            "noti_stream_subscribers", "Open notification streams on this replica.", registry=registry
        )
        self.channels = Gauge(
            "noti_stream_channels",
            "User channels this replica's pub/sub connection is subscribed to.",
            registry=registry,
        )

    @property
    def subscriber_count(self) -> int:
        """Open streams on this replica."""
        return sum(len(members) for members in self._wanted.values())

    async def start(self) -> None:
        """Open the pub/sub connection and start reading it."""
        await self._pubsub.subscribe(self._own_channel)
        self._reader = asyncio.create_task(self._read(), name="noti-hub-reader")

    async def close(self) -> None:
        """Stop reading and close the connection (at shutdown, after the server stopped)."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for task in list(self._tasks):
            task.cancel()
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    @contextlib.asynccontextmanager
    async def subscribe(self, user_id: uuid.UUID) -> AsyncIterator[Subscriber]:
        """A subscriber to one user's notifications for the duration of the block."""
        channel = user_channel(user_id)
        subscriber = Subscriber(self._queue_size)
        self._wanted.setdefault(channel, set()).add(subscriber)
        self.subscribers.inc()
        try:
            # Shielded: a stream cancelled now must not cut a Redis command in half on the shared
            # connection; the command finishes and the exit below undoes it.
            await asyncio.shield(self._spawn_reconcile(channel))
            yield subscriber
        finally:
            self.subscribers.dec()
            members = self._wanted.get(channel)
            if members is not None:
                members.discard(subscriber)
                if not members:
                    del self._wanted[channel]
                    self._spawn_reconcile(channel)

    def _spawn_reconcile(self, channel: str) -> asyncio.Task[None]:
        """Reconcile in a task of its own, kept until done (it may outlive the stream that asked)."""
        task = asyncio.create_task(self._reconcile(channel))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _reconcile(self, channel: str) -> None:
        """Make the Redis subscription of ``channel`` match whether anyone here wants it."""
        async with self._lock:
            wanted = channel in self._wanted
            if wanted and channel not in self._subscribed:
                await self._pubsub.subscribe(channel)
                self._subscribed.add(channel)
            elif not wanted and channel in self._subscribed:
                self._subscribed.discard(channel)
                try:
                    await self._pubsub.unsubscribe(channel)
                except aioredis.RedisError:
                    # A broken connection drops its subscriptions anyway; redis-py resubscribes only
                    # what is still in its own list, which no longer has this channel.
                    log.warning("unsubscribe from %s failed", channel)
            self.channels.set(len(self._subscribed))

    def _deliver(self, channel: str, data: bytes) -> None:
        members = self._wanted.get(channel)
        if not members:
            return
        notification = noti_pb2.Notification.FromString(data)
        for subscriber in list(members):
            subscriber.offer(notification)

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading the notification channels failed; retrying")
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            name = channel.decode() if isinstance(channel, bytes) else str(channel)
            data = message["data"]
            if isinstance(data, bytes):
                try:
                    self._deliver(name, data)
                except Exception:
                    log.exception("a message on %s could not be delivered", name)
