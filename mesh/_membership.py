"""A short-lived cache of workspace memberships, shared by the services that check them.

The user service owns memberships; board, chat and storage ask it (``CheckWorkspaceMemberships``) on
every read and write. Their answers are cached in Redis, one hash per workspace (``membership:{id}``,
field = user id, value = ``<role>@<expiry>`` with ``-`` for "not a member"), for a few seconds. Each
entry carries its own expiry (the hash's own TTL only reclaims memory): Redis before 7 has no
per-field or ``EXPIRE NX`` expiry, and the embedded one is older. The user service deletes
a workspace's hash after every committed membership change, so a removed member loses access at once
rather than when the entry expires; the expiry only bounds the damage of a lost invalidation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping

import redis.asyncio as aioredis

_NOT_MEMBER = "-"


def membership_key(workspace_id: uuid.UUID | str) -> str:
    """The Redis hash holding a workspace's cached memberships."""
    return f"membership:{workspace_id}"


class MembershipCache:
    """Cached ``user id → role`` answers per workspace; ``None`` means "not a member"."""

    def __init__(self, redis: aioredis.Redis, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    async def get(
        self, workspace_id: uuid.UUID, user_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, str | None]:
        """The cached answers among ``user_ids``; users without an entry are left out."""
        wanted = list(dict.fromkeys(user_ids))
        if not wanted:
            return {}
        values = await self._redis.hmget(membership_key(workspace_id), [str(u) for u in wanted])
        found: dict[uuid.UUID, str | None] = {}
        now = time.time()
        for user_id, value in zip(wanted, values, strict=True):
            if value is None:
                continue
            role, _, expiry = (value.decode() if isinstance(value, bytes) else str(value)).partition("@")
            if not expiry or float(expiry) <= now:
                continue
            found[user_id] = None if role == _NOT_MEMBER else role
        return found

    async def put(self, workspace_id: uuid.UUID, answers: Mapping[uuid.UUID, str | None]) -> None:
        """Remember answers just read from the user service."""
        if not answers:
            return
        key = membership_key(workspace_id)
        expiry = time.time() + self._ttl
        async with self._redis.pipeline(transaction=False) as pipe:
            for user, role in answers.items():
                pipe.hset(key, str(user), f"{role or _NOT_MEMBER}@{expiry:.3f}")
            pipe.expire(key, self._ttl)
            await pipe.execute()


async def invalidate_memberships(redis: aioredis.Redis, workspace_id: uuid.UUID | str) -> None:
    """Forget every cached membership of a workspace (the user service calls this after a change)."""
    await redis.delete(membership_key(workspace_id))
