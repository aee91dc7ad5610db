"""Live delivery across replicas: Redis pub/sub, one channel per user, one subscription per replica.

A replica that stores a notification publishes it (after the commit) to ``noti:user:<target>``. Every
replica runs one :class:`Hub`, the runtime's :class:`mesh.ChannelHub` over the users' channels: one Redis
pub/sub connection, subscribed to the channels of the users with at least one open stream on it, each
message parsed once and handed to that user's local streams. The last stream of a user to leave
unsubscribes the channel.

A stream is live once :meth:`Hub.subscribe` has entered (Redis confirmed the SUBSCRIBE), and only then does
the stream tell its client it is connected. Each stream has a bounded queue: a client that falls behind by
more than the bound loses its stream (RESOURCE_EXHAUSTED, ``STREAM_OVERFLOW``); when the replica's pub/sub
connection breaks, its open streams end with UNAVAILABLE. Either way the client reconnects and lists what
it missed. The hub's guarantees are spelled out in ``mesh/_pubsub.py``.
"""

from __future__ import annotations

import contextlib
import uuid

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from wealist.noti.v1 import noti_pb2

from mesh import ChannelHub, Subscriber

CHANNEL_PREFIX = "noti:user:"
# Pause before reading again after the pub/sub connection failed.
RETRY_SECONDS = 0.5
OVERFLOW_MESSAGE = "the stream fell behind; reconnect and list what was missed"

__all__ = ["CHANNEL_PREFIX", "RETRY_SECONDS", "Hub", "Subscriber", "decode", "publish", "user_channel"]


def user_channel(user_id: uuid.UUID | str) -> str:
    """The pub/sub channel of one user's notifications."""
    return f"{CHANNEL_PREFIX}{user_id}"


async def publish(redis: aioredis.Redis, notification: noti_pb2.Notification) -> None:
    """Send a stored notification to its target's streams on every replica."""
    await redis.publish(user_channel(notification.target_user_id), notification.SerializeToString())


def decode(data: bytes | str) -> noti_pb2.Notification:
    """The notification of one published message (parsed once per replica, shared by its streams)."""
    return noti_pb2.Notification.FromString(data if isinstance(data, bytes) else data.encode())


class Hub:
    """The replica's one pub/sub connection and the local streams of each user channel."""

    def __init__(self, redis: aioredis.Redis, *, queue_size: int, registry: CollectorRegistry) -> None:
        self._hub: ChannelHub[noti_pb2.Notification] = ChannelHub(
            redis,
            name="noti",
            decode=decode,
            queue_size=queue_size,
            metrics="noti_stream",
            registry=registry,
            listeners="notification streams",
            overflow_message=OVERFLOW_MESSAGE,
            retry_seconds=RETRY_SECONDS,
        )

    @property
    def subscriber_count(self) -> int:
        """Open streams on this replica."""
        return self._hub.subscriber_count

    async def start(self) -> None:
        """Open the pub/sub connection and start reading it."""
        await self._hub.start()

    async def close(self) -> None:
        """Stop reading and close the connection (at shutdown, after the server stopped)."""
        await self._hub.close()

    def subscribe(
        self, user_id: uuid.UUID
    ) -> contextlib.AbstractAsyncContextManager[Subscriber[noti_pb2.Notification]]:
        """A subscriber to one user's notifications for the duration of the block, live once it starts."""
        return self._hub.subscribe(user_channel(user_id))
