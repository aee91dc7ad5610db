"""Live events across replicas: one Redis pub/sub connection per replica, fanned out to local listeners.

A service that pushes events to long-lived streams (SSE, sockets) publishes each event, after its commit, to
a Redis channel. Every replica runs one :class:`ChannelHub`: ONE pub/sub connection, subscribed to the
channels that have at least one listener on that replica, and a reader task that hands each message to
the channel's local listeners. A listener is a :class:`Subscriber`, a bounded queue the stream reads from.

What the hub guarantees:

- **Live once open.** ``async with hub.subscribe(channel)`` enters only once Redis has confirmed the
  SUBSCRIBE (the reader sees the confirmation), so a message published after the block was entered
  reaches the listener. A stream tells its client it is connected from inside the block, never before.
  The wait is bounded (``confirm_seconds``): past it the block enters anyway and a warning is logged.
  A second listener of a channel whose SUBSCRIBE is still on its way waits for the same confirmation.
- **Once per listener per replica.** A message is read once per replica and turned into the service's item
  once, by the ``decode`` hook; that one item is offered to each listener of the channel exactly once, in
  the order Redis delivered the messages. Nothing is delivered locally on the side: the publishing
  replica hears its own message back from Redis like every other replica. A message ``decode`` cannot
  read is logged and dropped.
- **Bounded queues.** A listener's queue holds at most ``queue_size`` items and offering never blocks the
  reader. A listener that falls that far behind is closed: its queue is emptied and its next
  :meth:`Subscriber.get` raises RESOURCE_EXHAUSTED (``STREAM_OVERFLOW``) instead of growing the replica's
  memory. The client reconnects and fetches what it missed from the service's history endpoints.
- **One subscription per channel per replica.** The first listener of a channel subscribes it, the last
  one to leave unsubscribes it. Who listens is kept synchronously (no ``await`` between a check and a
  change), so a cancelled listener always leaves the maps clean; the SUBSCRIBE/UNSUBSCRIBE commands that
  follow are reconciled under one lock against the wanted set, so a channel left and joined again at once
  ends up subscribed, never lost. A SUBSCRIBE that fails refuses the listener with UNAVAILABLE.
- **No silent gaps.** Messages published while the pub/sub connection is broken are lost to this replica
  (Redis pub/sub keeps nothing). So when the reader sees the connection fail, and again when redis-py
  reconnects (it resubscribes every channel it had), every listener open at that moment is closed with
  UNAVAILABLE (``STREAM_INTERRUPTED``), what it had queued dropped: its client reconnects and fetches what
  it missed, rather than waiting on a stream that skipped events. After a reconnect, a new listener of an
  already subscribed channel waits for the resubscription's confirmation like any other, and channels
  redis-py resubscribed that nobody here wants any more are unsubscribed again. The reader retries every
  ``retry_seconds`` until the connection is back.

Not guaranteed: anything published while a channel has no listener on the replica, or before a listener's
block was entered (pub/sub is fire and forget); history is the services' business.

Two gauges per hub, ``<metrics>_subscribers`` (open listeners) and ``<metrics>_channels`` (channels
subscribed in Redis), go to the registry given (the runtime's, so they are on ``/metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Gauge
from redis.asyncio.client import PubSub

from mesh._errors import MeshError, ResourceExhausted, Unavailable

log = logging.getLogger("wealist.mesh.pubsub")

T = TypeVar("T")

# How long a new listener waits for Redis to confirm its channel's SUBSCRIBE before it goes on anyway.
CONFIRM_SECONDS = 5.0
# Pause before reading again after the pub/sub connection failed.
RETRY_SECONDS = 0.5
OVERFLOW_MESSAGE = "the stream fell behind; reconnect and fetch what was missed"
INTERRUPTED_MESSAGE = "live events were interrupted; reconnect and fetch what was missed"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Subscriber(Generic[T]):
    """One listener's bounded queue of items, and why it ended.

    :meth:`offer` never blocks the hub's reader: a listener ``size`` items behind is ended with
    RESOURCE_EXHAUSTED (``STREAM_OVERFLOW``, its queue emptied) instead of growing the replica's memory.
    """

    __slots__ = ("_closed", "_error", "_overflow_message", "_queue", "ended")

    def __init__(self, size: int, *, overflow_message: str = OVERFLOW_MESSAGE) -> None:
        self._queue: asyncio.Queue[T | None] = asyncio.Queue(maxsize=size)
        self._error: MeshError | None = None
        self._overflow_message = overflow_message
        self._closed = asyncio.Event()
        self.ended = False

    @property
    def error(self) -> MeshError | None:
        """Why the listener ended, when it ended with an error (overflow, interruption...)."""
        return self._error

    def offer(self, item: T) -> None:
        """Queue an item, or end the listener when its queue is full."""
        if self.ended:
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.end(ResourceExhausted(self._overflow_message, code="STREAM_OVERFLOW"))

    def end(self, error: MeshError | None = None) -> None:
        """End the listener now: what is queued is dropped, and :meth:`get` raises ``error`` if given."""
        if self.ended:
            return
        self.ended = True
        self._error = error
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)
        self._closed.set()

    async def wait_ended(self) -> None:
        """Return once the listener has ended."""
        await self._closed.wait()

    async def get(self) -> T | None:
        """The next item; ``None`` once the listener ended normally, its error if it ended with one."""
        item = await self._queue.get()
        if item is None:
            # Put back, so every later call sees the end too.
            self._queue.put_nowait(None)
            if self._error is not None:
                raise self._error
        return item


class ChannelHub(Generic[T]):
    """A replica's one pub/sub connection, and the local listeners of each channel (see the module).

    ``decode`` turns a message's data into the item every listener of the channel gets (once per message,
    not once per listener). ``metrics`` prefixes the two gauges; ``listeners`` names the listeners in their
    help text ("notification streams"); ``overflow_message`` is what an overflowing listener is told.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        name: str,
        decode: Callable[[bytes | str], T],
        queue_size: int,
        metrics: str,
        registry: CollectorRegistry | None = None,
        listeners: str = "listeners",
        overflow_message: str = OVERFLOW_MESSAGE,
        confirm_seconds: float = CONFIRM_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        # Subscribe confirmations are read, not ignored: they tell a waiting listener it is live.
        self._pubsub: PubSub = redis.pubsub(ignore_subscribe_messages=False)
        self._name = name
        self._decode = decode
        self._queue_size = queue_size
        self._overflow_message = overflow_message
        self._confirm_seconds = confirm_seconds
        self._retry_seconds = retry_seconds
        self._wanted: dict[str, set[Subscriber[T]]] = {}
        self._subscribed: set[str] = set()
        # Channels redis-py resubscribed after a reconnect that nobody here wanted any more.
        self._stale: set[str] = set()
        # Per channel, one event per SUBSCRIBE sent and not confirmed yet (Redis confirms in order).
        self._confirming: dict[str, deque[asyncio.Event]] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reader: asyncio.Task[None] | None = None
        # The pub/sub connection our reconnect callback is registered on (redis-py leaves it untyped).
        self._connection: Any = None
        # Subscribed for the hub's whole life, so the connection exists before any channel is wanted and
        # the reader can block on it.
        self._own_channel = f"{name}:hub:{uuid.uuid4().hex}"
        self.subscribers = Gauge(
            f"{metrics}_subscribers", f"Open {listeners} on this replica.", registry=registry
        )
        self.channels = Gauge(
            f"{metrics}_channels",
            f"Channels of {listeners} this replica's pub/sub connection is subscribed to.",
            registry=registry,
        )

    @property
    def subscriber_count(self) -> int:
        """Open listeners on this replica."""
        return sum(len(members) for members in self._wanted.values())

    @property
    def channel_count(self) -> int:
        """Channels subscribed in Redis now."""
        return len(self._subscribed)

    async def start(self) -> None:
        """Open the pub/sub connection and start reading it."""
        await self._pubsub.subscribe(self._own_channel)
        self._connection = self._pubsub.connection
        # Called after redis-py's own callback (which resubscribes) on every later reconnect.
        self._connection.register_connect_callback(self._reconnected)
        self._reader = asyncio.create_task(self._read(), name=f"{self._name}-hub-reader")

    async def close(self) -> None:
        """Stop reading and close the connection (at shutdown, after the server stopped)."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for task in list(self._tasks):
            task.cancel()
        self._interrupt("the replica is shutting down")
        if self._connection is not None:
            self._connection.deregister_connect_callback(self._reconnected)
            self._connection = None
        await self._pubsub.aclose()

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscriber[T]]:
        """A listener of ``channel`` for the duration of the block, live once the block starts.

        UNAVAILABLE when Redis refuses the SUBSCRIBE, or when the connection failed while it was waited for.
        """
        subscriber: Subscriber[T] = Subscriber(self._queue_size, overflow_message=self._overflow_message)
        self._wanted.setdefault(channel, set()).add(subscriber)
        self.subscribers.inc()
        try:
            try:
                # Shielded: a listener cancelled now must not cut a Redis command in half on the shared
                # connection; the command finishes and the exit below undoes it.
                confirmed = await asyncio.shield(self._spawn_reconcile(channel))
            except aioredis.RedisError as error:
                raise Unavailable(f"live events are unavailable: {error}") from None
            if confirmed is not None:
                await self._until_confirmed(channel, confirmed, subscriber)
            if subscriber.error is not None:
                raise subscriber.error
            yield subscriber
        finally:
            subscriber.end()
            self.subscribers.dec()
            members = self._wanted.get(channel)
            if members is not None:
                members.discard(subscriber)
                if not members:
                    del self._wanted[channel]
                    self._spawn_reconcile(channel)

    async def _until_confirmed(
        self, channel: str, confirmed: asyncio.Event, subscriber: Subscriber[T]
    ) -> None:
        """Wait for the confirmation, or until the listener was ended meanwhile, or the bound passed."""
        waits = {
            asyncio.ensure_future(confirmed.wait()),
            asyncio.ensure_future(subscriber.wait_ended()),
        }
        try:
            done, _ = await asyncio.wait(
                waits, timeout=self._confirm_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiting in waits:
                waiting.cancel()
        if not done:
            log.warning("Redis did not confirm the subscription to %s in time", channel)

    def _spawn_reconcile(self, channel: str) -> asyncio.Task[asyncio.Event | None]:
        """Reconcile in a task of its own, kept until done (it may outlive the listener that asked)."""
        task = asyncio.create_task(self._reconcile(channel))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _reconcile(self, channel: str) -> asyncio.Event | None:
        """Make the Redis subscription of ``channel`` match whether anyone here wants it.

        Returns what to wait on until Redis has confirmed the subscription, or ``None`` when there is
        nothing left to wait for.
        """
        async with self._lock:
            wanted = channel in self._wanted
            if wanted and channel not in self._subscribed:
                confirmed = asyncio.Event()
                self._confirming.setdefault(channel, deque()).append(confirmed)
                try:
                    await self._pubsub.subscribe(channel)
                except BaseException:
                    self._forget(channel, confirmed)
                    raise
                self._subscribed.add(channel)
                self._stale.discard(channel)
            elif not wanted and (channel in self._subscribed or channel in self._stale):
                self._subscribed.discard(channel)
                self._stale.discard(channel)
                try:
                    await self._pubsub.unsubscribe(channel)
                except aioredis.RedisError:
                    # A broken connection drops its subscriptions anyway; redis-py resubscribes only
                    # what is still in its own list, and a stale one is dropped after the reconnect.
                    log.warning("unsubscribe from %s failed", channel)
            self.channels.set(len(self._subscribed))
            # The newest SUBSCRIBE of the channel not confirmed yet, if any (also for a second listener
            # that arrives while the first one's SUBSCRIBE is still on its way).
            pending = self._confirming.get(channel)
            return pending[-1] if wanted and pending else None

    def _forget(self, channel: str, confirmed: asyncio.Event) -> None:
        pending = self._confirming.get(channel)
        if pending is not None and confirmed in pending:
            pending.remove(confirmed)
            if not pending:
                del self._confirming[channel]

    def _confirm(self, channel: str) -> None:
        pending = self._confirming.get(channel)
        if pending:
            pending.popleft().set()
            if not pending:
                del self._confirming[channel]

    def _interrupt(self, reason: str) -> None:
        """End every open listener with UNAVAILABLE: it may have missed messages."""
        for members in self._wanted.values():
            for subscriber in members:
                subscriber.end(Unavailable(reason, code="STREAM_INTERRUPTED"))

    def _reconnected(self, connection: object) -> None:
        """redis-py reconnected the pub/sub connection and has just resubscribed what it had."""
        log.warning("the %s pub/sub connection was re-established; ending its open listeners", self._name)
        self._interrupt(INTERRUPTED_MESSAGE)
        resubscribed = {_text(channel) for channel in self._pubsub.channels} - {self._own_channel}
        for channel in resubscribed:
            # The SUBSCRIBEs sent on the old connection will never be confirmed; the resubscription will,
            # once per channel. Their waiters were just ended.
            self._confirming[channel] = deque([asyncio.Event()])
            if channel not in self._subscribed:
                self._stale.add(channel)
                self._spawn_reconcile(channel)

    def _deliver(self, channel: str, data: bytes | str) -> None:
        members = self._wanted.get(channel)
        if not members:
            return
        item = self._decode(data)
        for subscriber in list(members):
            subscriber.offer(item)

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading the %s channels failed; retrying", self._name)
                self._interrupt(INTERRUPTED_MESSAGE)
                await asyncio.sleep(self._retry_seconds)
                continue
            if message is None:
                continue
            name = _text(message["channel"])
            if message.get("type") == "subscribe":
                self._confirm(name)
            elif message.get("type") == "message":
                try:
                    self._deliver(name, message["data"])
                except Exception:
                    log.exception("a message on %s could not be delivered", name)
