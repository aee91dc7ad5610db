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

The same invalidation is also the signal other services act on: in the same transaction it appends a
:class:`MembershipChange` (the workspace, the users whose membership ended, when) to the Redis stream
``membership:changes``. Services read it two ways:

- :func:`follow_membership_changes`, a consumer group: each change is handled once per service, by one
  of its replicas, and acknowledged only once handled, so a replica that was down or crashed midway
  handles it later (another replica claims what a dead one left pending). For durable work: the board
  service drops the project memberships of removed users.
- :func:`tail_membership_changes`: every replica hears every change from the moment it starts reading.
  For what lives in one replica: the board service rechecks the open sockets of the workspace at once.

Handlers must be idempotent (a change may be handled twice: a replica can die after the work and before
the acknowledgement), and the stream keeps only the latest changes (about ``CHANGES_MAXLEN``).

Both readers block in Redis for at most ``block_ms`` at a time and are stopped by setting their ``stop``
event, never by cancelling them: redis-py's asyncio client can lose a cancellation that lands while a
blocking read is in flight, and the task then hangs in its next read (seen with XREAD on redis-py 8.2).
:func:`run_until_cancelled` gives a cancellable task that stops them that way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

log = logging.getLogger("wealist.mesh.membership")

_NOT_MEMBER = "-"
# The stream of membership changes (see the module) and roughly how many entries it keeps: far more than
# a service's replicas fall behind by during a restart.
CHANGES_STREAM = "membership:changes"
CHANGES_MAXLEN = 10_000
# How long a blocking read waits before it looks again (and notices that it should stop).
_BLOCK_MS = 1_000
# A change delivered to a consumer that has not acknowledged it for this long is taken over by another
# (its replica died, or its handler failed and it is retried).
CLAIM_IDLE_MS = 30_000
_RETRY_SECONDS = 1.0
# A consumer idle this long with nothing pending is a replica that is gone.
_GONE_CONSUMER_MS = 24 * 60 * 60 * 1000
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

    async def generation(self, workspace_id: uuid.UUID) -> str:
        """The workspace's generation now (``"0"`` before its first change): what a reader compares with
        the generation of an earlier lookup to know whether the workspace changed since."""
        raw = await self._redis.get(generation_key(workspace_id))
        return raw.decode() if isinstance(raw, bytes) else str(raw or "0")

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


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """One committed change of a workspace's memberships, as the user service signalled it.

    ``removed`` are the users whose membership ended (empty for joins, role changes and the deletion of
    the workspace, which end no membership row but the workspace); ``at`` is when the user service
    signalled it (epoch seconds, after its commit), so a handler can leave alone what was granted
    later; ``entry_id`` is the stream entry's id.
    """

    workspace_id: uuid.UUID
    removed: tuple[uuid.UUID, ...]
    at: float
    entry_id: str


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _change(entry_id: bytes | str, fields: Mapping[Any, Any]) -> MembershipChange | None:
    """The change an entry holds; ``None`` (logged) for an entry this code cannot read."""
    values = {_text(key): _text(value) for key, value in fields.items()}
    try:
        removed = tuple(uuid.UUID(user) for user in values.get("removed", "").split(",") if user)
        return MembershipChange(uuid.UUID(values["workspace"]), removed, float(values["at"]), _text(entry_id))
    except (KeyError, ValueError):
        log.warning("membership change %s cannot be read: %r", _text(entry_id), values)
        return None


async def invalidate_memberships(
    redis: aioredis.Redis, workspace_id: uuid.UUID | str, *, removed: Iterable[uuid.UUID] = ()
) -> None:
    """Forget every cached membership of a workspace, bump its generation and signal the change (the
    user service calls this after a committed change; ``removed`` names the users whose membership it
    ended), so an answer read before the change is not written after it, and services that hold state
    per member hear of it (see the module)."""
    signal = {
        "workspace": str(workspace_id),
        "removed": ",".join(str(u) for u in removed),
        "at": repr(time.time()),
    }
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(generation_key(workspace_id))
        pipe.expire(generation_key(workspace_id), _GENERATION_TTL_SECONDS)
        pipe.delete(membership_key(workspace_id))
        pipe.xadd(CHANGES_STREAM, signal, maxlen=CHANGES_MAXLEN, approximate=True)  # type: ignore[arg-type]
        await pipe.execute()


Handler = Callable[[MembershipChange], Awaitable[None]]
# Stream entries as redis-py returns them: (id, fields), both None for an entry trimmed while pending.
Entries = list[tuple[Any, Any]]
# XREAD and XREADGROUP answer per stream: (name, entries).
Replies = list[tuple[Any, Entries]]


def consumer_name() -> str:
    """A name for this process in a consumer group: unique per process, readable in ``XINFO``."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def _handle_entries(redis: aioredis.Redis, group: str, entries: Entries, handle: Handler) -> None:
    """Handle each entry and acknowledge it; one whose handler fails stays pending and is retried."""
    for entry_id, fields in entries:
        if entry_id is None:
            # Trimmed away while pending (Redis 6.2 answers a claim of it with nil): nothing to handle.
            continue
        if fields is None:
            await redis.xack(CHANGES_STREAM, group, entry_id)
            continue
        change = _change(entry_id, fields)
        if change is not None:
            try:
                await handle(change)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("handling membership change %s failed; it is retried", change.entry_id)
                continue
        await redis.xack(CHANGES_STREAM, group, entry_id)


async def _forget_gone_consumers(redis: aioredis.Redis, group: str) -> None:
    """Drop the group's consumers that hold nothing and were idle for a day: replicas long gone (each
    process reads under a name of its own, so they would pile up in ``XINFO CONSUMERS``)."""
    for consumer in await redis.xinfo_consumers(CHANGES_STREAM, group):
        if consumer["pending"] == 0 and consumer["idle"] > _GONE_CONSUMER_MS:
            await redis.xgroup_delconsumer(CHANGES_STREAM, group, consumer["name"])


async def follow_membership_changes(
    redis: aioredis.Redis,
    *,
    group: str,
    handle: Handler,
    stop: asyncio.Event,
    consumer: str | None = None,
    block_ms: int = _BLOCK_MS,
    claim_idle_ms: int = CLAIM_IDLE_MS,
) -> None:
    """Handle every membership change once for the consumer group ``group`` (one per service), forever.

    The group is created on first use at the start of the stream, so changes signalled before the
    service ever ran are handled too. Each round first takes over entries other consumers (or this one)
    left unacknowledged for ``claim_idle_ms``, then waits up to ``block_ms`` for new ones. Redis errors
    are logged and retried. Returns once ``stop`` is set (within ``block_ms``).
    """
    me = consumer or consumer_name()
    created = False
    while not stop.is_set():
        try:
            if not created:
                try:
                    await redis.xgroup_create(CHANGES_STREAM, group, id="0", mkstream=True)
                except ResponseError as error:
                    if "BUSYGROUP" not in str(error):
                        raise
                await _forget_gone_consumers(redis, group)
                created = True
            # XAUTOCLAIM answers [next cursor, entries, (deleted ids, since Redis 7)].
            claimed = await redis.xautoclaim(
                CHANGES_STREAM, group, me, min_idle_time=claim_idle_ms, count=100
            )
            await _handle_entries(redis, group, claimed[1], handle)
            replies = cast(
                "Replies | None",
                await redis.xreadgroup(group, me, {CHANGES_STREAM: ">"}, count=100, block=block_ms),
            )
            for _, entries in replies or []:
                await _handle_entries(redis, group, entries, handle)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reading membership changes for %s failed; retrying", group)
            await asyncio.sleep(_RETRY_SECONDS)


async def tail_membership_changes(
    redis: aioredis.Redis, *, handle: Handler, stop: asyncio.Event, block_ms: int = _BLOCK_MS
) -> None:
    """Hand every membership change signalled from now on to ``handle``, forever (each replica its own).

    After a Redis error it goes on from the last change it saw, so a short outage loses nothing the
    stream still holds. A failing handler is logged and the change skipped. Returns once ``stop`` is set
    (within ``block_ms``).
    """
    # The newest entry when reading starts, as an id: "$" on every call would skip whatever was added
    # between two calls.
    last: str | None = None
    while not stop.is_set():
        try:
            if last is None:
                newest = cast("Entries", await redis.xrevrange(CHANGES_STREAM, count=1))
                last = _text(newest[0][0]) if newest else "0-0"
            replies = cast(
                "Replies | None", await redis.xread({CHANGES_STREAM: last}, count=100, block=block_ms)
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("tailing membership changes failed; retrying")
            await asyncio.sleep(_RETRY_SECONDS)
            continue
        for _, entries in replies or []:
            for entry_id, fields in entries:
                last = _text(entry_id)
                change = _change(entry_id, fields)
                if change is None:
                    continue
                try:
                    await handle(change)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("handling membership change %s failed", change.entry_id)


async def run_until_cancelled(*readers: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run readers that stop on an event until this task is cancelled; then stop them and wait for them.

    The cancellation is turned into the readers' ``stop`` event (see the module for why they are not
    cancelled themselves), and re-raised once they returned.
    """
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(reader(stop)) for reader in readers]
    try:
        # asyncio.wait, not gather: being cancelled here must not cancel the readers.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        stop.set()
        await asyncio.shield(asyncio.wait(tasks))
    for task in tasks:
        task.result()
