"""The shared membership cache (answers per workspace, "not a member" remembered, invalidation) and the
signal of each change on the membership stream."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio

from mesh import (
    MembershipCache,
    MembershipChange,
    follow_membership_changes,
    invalidate_memberships,
    membership_key,
    run_until_cancelled,
    tail_membership_changes,
)
from mesh._membership import CHANGES_STREAM


async def test_answers_come_back_as_stored_and_unknown_users_are_left_out(rds: redis.asyncio.Redis) -> None:
    cache = MembershipCache(rds, ttl_seconds=30)
    workspace, owner, outsider, unknown = (uuid.uuid4() for _ in range(4))
    first = await cache.get(workspace, [owner])
    assert first.answers == {}
    assert await cache.put(workspace, {owner: "OWNER", outsider: None}, generation=first.generation)
    cached = await cache.get(workspace, [owner, outsider, unknown])
    assert cached.answers == {owner: "OWNER", outsider: None}
    assert (await cache.get(uuid.uuid4(), [owner])).answers == {}


async def test_each_entry_expires_on_its_own(rds: redis.asyncio.Redis) -> None:
    cache = MembershipCache(rds, ttl_seconds=1)
    workspace, early, late = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    generation = (await cache.get(workspace, [])).generation
    await cache.put(workspace, {early: "MEMBER"}, generation=generation)
    assert 0 < await rds.ttl(membership_key(workspace)) <= 1
    await asyncio.sleep(0.6)
    # A later answer keeps the hash alive but not the older entry within it.
    await cache.put(workspace, {late: "ADMIN"}, generation=generation)
    await asyncio.sleep(0.6)
    assert (await cache.get(workspace, [early, late])).answers == {late: "ADMIN"}


async def test_invalidation_forgets_the_whole_workspace_only(rds: redis.asyncio.Redis) -> None:
    cache = MembershipCache(rds, ttl_seconds=30)
    changed, untouched, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for workspace, role in ((changed, "MEMBER"), (untouched, "ADMIN")):
        lookup = await cache.get(workspace, [user])
        await cache.put(workspace, {user: role}, generation=lookup.generation)
    await invalidate_memberships(rds, changed)
    assert (await cache.get(changed, [user])).answers == {}
    assert (await cache.get(untouched, [user])).answers == {user: "ADMIN"}


async def test_an_answer_read_before_a_change_is_not_cached_after_it(rds: redis.asyncio.Redis) -> None:
    cache = MembershipCache(rds, ttl_seconds=30)
    workspace, user = uuid.uuid4(), uuid.uuid4()
    # A reader misses and asks the user service; meanwhile the user is removed and the cache invalidated.
    lookup = await cache.get(workspace, [user])
    await invalidate_memberships(rds, workspace)
    assert not await cache.put(workspace, {user: "MEMBER"}, generation=lookup.generation)
    assert (await cache.get(workspace, [user])).answers == {}
    # The next reader asks again and may cache what it is told.
    fresh = await cache.get(workspace, [user])
    assert await cache.put(workspace, {user: None}, generation=fresh.generation)
    assert (await cache.get(workspace, [user])).answers == {user: None}


# --- the signal -----------------------------------------------------------------------------------------


async def _until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "not within time"
        await asyncio.sleep(0.02)


async def test_every_tailing_reader_hears_each_change_from_when_it_started(rds: redis.asyncio.Redis) -> None:
    workspace, gone = uuid.uuid4(), uuid.uuid4()
    await invalidate_memberships(rds, workspace)  # before anyone tails: not handed over
    heard: dict[str, list[MembershipChange]] = {"a": [], "b": []}

    def reader(name: str) -> Callable[[MembershipChange], Awaitable[None]]:
        async def handle(change: MembershipChange) -> None:
            if change.workspace_id == workspace:
                heard[name].append(change)

        return handle

    stop = asyncio.Event()
    tails = [
        asyncio.create_task(tail_membership_changes(rds, handle=reader(n), stop=stop, block_ms=100))
        for n in heard
    ]
    try:
        await asyncio.sleep(0.3)
        before = time.time()
        await invalidate_memberships(rds, workspace, removed=[gone])
        await invalidate_memberships(rds, workspace)
        await _until(lambda: all(len(changes) == 2 for changes in heard.values()))
    finally:
        stop.set()
        await asyncio.gather(*tails)
    for changes in heard.values():
        assert [c.removed for c in changes] == [(gone,), ()]
        assert before <= changes[0].at <= changes[1].at <= time.time()


async def test_a_group_handles_each_change_once_and_retries_a_failed_one(rds: redis.asyncio.Redis) -> None:
    workspace = uuid.uuid4()
    group = f"test-{uuid.uuid4().hex[:8]}"
    handled: list[tuple[str, MembershipChange]] = []
    failures = {"left": 1}

    def consumer(name: str) -> Callable[[MembershipChange], Awaitable[None]]:
        async def handle(change: MembershipChange) -> None:
            if change.workspace_id != workspace:
                return
            if failures["left"]:
                failures["left"] -= 1
                raise RuntimeError("the database is away")
            handled.append((name, change))

        return handle

    # The group starts at the beginning of the stream: a change signalled before it existed is handled.
    await invalidate_memberships(rds, workspace, removed=[uuid.uuid4()])
    stop = asyncio.Event()
    followers = [
        asyncio.create_task(
            follow_membership_changes(
                rds,
                group=group,
                handle=consumer(name),
                stop=stop,
                consumer=name,
                block_ms=100,
                claim_idle_ms=200,
            )
        )
        for name in ("one", "two")
    ]
    try:
        await invalidate_memberships(rds, workspace, removed=[uuid.uuid4()])
        await _until(lambda: len(handled) == 2)
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(*followers)
    # Both changes once each, the failed one included (taken over once it was idle), none left pending.
    assert len({change.entry_id for _, change in handled}) == 2
    assert len(handled) == 2
    pending = await rds.xpending(CHANGES_STREAM, group)
    assert pending["pending"] == 0


async def test_readers_stop_when_their_task_is_cancelled(rds: redis.asyncio.Redis) -> None:
    """Cancelling the task that runs them stops both readers between two reads, never inside one."""
    group = f"test-{uuid.uuid4().hex[:8]}"

    async def ignore(change: MembershipChange) -> None:
        return None

    for _ in range(20):
        running = asyncio.create_task(
            run_until_cancelled(
                lambda stop: follow_membership_changes(
                    rds, group=group, handle=ignore, stop=stop, block_ms=100
                ),
                lambda stop: tail_membership_changes(rds, handle=ignore, stop=stop, block_ms=100),
            )
        )
        await asyncio.sleep(0.13)
        running.cancel()
        done, _ = await asyncio.wait({running}, timeout=2)
        assert done == {running}
        assert running.cancelled()
