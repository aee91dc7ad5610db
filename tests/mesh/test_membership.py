"""The shared membership cache: answers per workspace, "not a member" remembered, invalidation."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio

from mesh import MembershipCache, invalidate_memberships, membership_key


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
