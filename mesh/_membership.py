"""A short-lived cache of workspace memberships, shared by the services that check them.

The user service owns memberships; board, chat and storage ask it (``CheckWorkspaceMemberships``) on
every read and write. Their answers are cached in Redis, one hash per workspace (``membership:{id}``,
field = user id, value = ``<role>@<expiry>`` with ``-`` for "not a member"), for a few seconds. Each
entry carries its own expiry (the hash's own TTL only reclaims memory): Redis before 7 has no
per-field or ``EXPIRE NX`` expiry, and the embedded one is older. The user service deletes
a workspace's hash after every committed membership change, so a removed member loses access at once
rather than when the entry expires; the expiry only bounds the damage of a lost invalidation.

The race a plain delete leaves open: a reader asks the user service just before a change commits, the
user service invalidates, and only then does the reader write its (now stale) answer. So every
invalidation also bumps the workspace's generation (``membership-gen:{id}``); a reader notes the
generation with its lookup and writes its answers only if the generation is still the same (one Lua
script, so the check and the write are atomic).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis

_NOT_MEMBER = "-"
# A generation outlives any lookup by far; it is refreshed on every bump.
_GENERATION_TTL_SECONDS = 24 * 60 * 60
# KEYS: the hash, the generation; ARGV: the generation the reader saw, the TTL, then field/value pairs.
_PUT_IF_CURRENT = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


def membership_key(workspace_id: uuid.UUID | str) -> str:
    """The Redis hash holding a workspace's cached memberships."""
    return f"membership:{workspace_id}"


def generation_key(workspace_id: uuid.UUID | str) -> str:
    """The Redis counter of a workspace's membership changes."""
    return f"membership-gen:{workspace_id}"


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the cache held: the answers it had, and the generation to write fresh answers under."""

    answers: dict[uuid.UUID, str | None]
    generation: str


class MembershipCache:
    """Cached ``user id → role`` answers per workspace; ``None`` means "not a member"."""

    def __init__(self, redis: aioredis.Redis, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._put_if_current = redis.register_script(_PUT_IF_CURRENT)

    async def get(self, workspace_id: uuid.UUID, user_ids: Iterable[uuid.UUID]) -> Lookup:
        """The cached answers among ``user_ids`` (users without an entry are left out), in one round trip."""
        wanted = list(dict.fromkeys(user_ids))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(generation_key(workspace_id))
            if wanted:
                pipe.hmget(membership_key(workspace_id), [str(u) for u in wanted])
            replies = await pipe.execute()
        raw = replies[0]
        generation = raw.decode() if isinstance(raw, bytes) else str(raw or "0")
        values = replies[1] if wanted else []
        found: dict[uuid.UUID, str | None] = {}
        now = time.time()
        for user_id, value in zip(wanted, values, strict=True):
            if value is None:
                continue
            role, _, expiry = (value.decode() if isinstance(value, bytes) else str(value)).partition("@")
            if not expiry or float(expiry) <= now:
                continue
            found[user_id] = None if role == _NOT_MEMBER else role
        return Lookup(found, generation)

    async def put(
        self, workspace_id: uuid.UUID, answers: Mapping[uuid.UUID, str | None], *, generation: str
    ) -> bool:
        """Remember answers just read from the user service, unless the workspace changed since the
        lookup that gave ``generation``; whether they were written."""
        if not answers:
            return False
        expiry = time.time() + self._ttl
        pairs: list[str] = []
        for user, role in answers.items():
            pairs += [str(user), f"{role or _NOT_MEMBER}@{expiry:.3f}"]
        keys = [membership_key(workspace_id), generation_key(workspace_id)]
        written = await self._put_if_current(keys=keys, args=[generation, self._ttl, *pairs])
        return bool(written)


async def invalidate_memberships(redis: aioredis.Redis, workspace_id: uuid.UUID | str) -> None:
    """Forget every cached membership of a workspace and bump its generation (the user service calls
    this after a committed change), so an answer read before the change is not written after it."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(generation_key(workspace_id))
        pipe.expire(generation_key(workspace_id), _GENERATION_TTL_SECONDS)
        pipe.delete(membership_key(workspace_id))
        await pipe.execute()
