"""Unread counts cached in Redis, never stale after a change.

``noti:unread:<user>:<workspace or all>`` holds ``<version>:<count>``; ``noti:unread:<user>:version`` is
bumped after every committed change of that user's notifications (create, read, read-all, delete). A
cached count is used only when it carries the current version, so one INCR invalidates every workspace's
count at once, and a reader that computed a count from before a change can never make it current: it
tags the value with the version it read *before* querying, which the writer's bump has moved past.
Redis failing only costs the cache: counts are then computed from the database.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable

import redis.asyncio as aioredis

log = logging.getLogger("wealist.noti.counts")

# Versions outlive every cached count by far; an expired version restarts from nothing, which only
# makes older values miss.
VERSION_SECONDS = 7 * 24 * 3600


def count_key(user_id: uuid.UUID, workspace_id: uuid.UUID | None) -> str:
    """The cache key of one user's unread count (in one workspace, or ``all``)."""
    return f"noti:unread:{user_id}:{workspace_id or 'all'}"


def version_key(user_id: uuid.UUID) -> str:
    """The key whose value every cached count of the user must carry to be used."""
    return f"noti:unread:{user_id}:version"


class UnreadCounts:
    """Read-through cache of unread counts with version-checked invalidation."""

    def __init__(self, redis: aioredis.Redis, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    async def get(
        self, user_id: uuid.UUID, workspace_id: uuid.UUID | None, compute: Callable[[], Awaitable[int]]
    ) -> int:
        """The cached count when it is current, else ``compute()`` (which is then cached)."""
        key = count_key(user_id, workspace_id)
        try:
            version, cached = await self._redis.mget(version_key(user_id), key)
        except aioredis.RedisError:
            log.warning("unread-count cache unavailable")
            return await compute()
        tag = version.decode() if isinstance(version, bytes) else "0"
        if isinstance(cached, bytes):
            cached_tag, _, value = cached.decode().partition(":")
            if cached_tag == tag and value.isdigit():
                return int(value)
        count = await compute()
        try:
            await self._redis.set(key, f"{tag}:{count}", ex=self._ttl)
        except aioredis.RedisError:
            log.warning("unread-count cache unavailable")
        return count

    async def invalidate(self, user_ids: Iterable[uuid.UUID]) -> None:
        """Make every cached count of these users stale (call after the change committed)."""
        users = set(user_ids)
        if not users:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id in users:
                    pipe.incr(version_key(user_id))
                    pipe.expire(version_key(user_id), VERSION_SECONDS)
                await pipe.execute()
        except aioredis.RedisError:
            log.exception("unread counts of %d users could not be invalidated", len(users))
