"""The shared membership cache: answers per workspace, "not a member" remembered, invalidation."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio

from mesh import MembershipCache, invalidate_memberships, membership_key


async def test_answers_come_back_as_stored_and_unknown_users_are_left_out(rds: redis.asyncio.Redis) -> None:
    cache = MembershipCache(rds, ttl_seconds=30)
    workspace, owner, outsider, unknown = (uuid.uuid4() for _ in range(4))
    await cache.put(workspace, {owner: "OWNER", outsider: None})
    assert await cache.get(workspace, [owner, outsider, unknown]) == {owner: "OWNER", outsider: None}
    assert await cache.get(uuid.uuid4(), [owner]) == {}


async def test_each_entry_expires_on_its_own(rds: redis.asyncio.Redis) -> None:
    cache = MembershipCache(rds, ttl_seconds=1)
    workspace, early, late = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await cache.put(workspace, {early: "MEMBER"})
    assert 0 < await rds.ttl(membership_key(workspace)) <= 1
    await asyncio.sleep(0.6)
    # A later answer keeps the hash alive but not the older entry within it.
    await cache.put(workspace, {late: "ADMIN"})
    await asyncio.sleep(0.6)
    assert await cache.get(workspace, [early, late]) == {late: "ADMIN"}


async def test_invalidation_forgets_the_whole_workspace_only(rds: redis.asyncio.Redis) -> None:
    cache = MembershipCache(rds, ttl_seconds=30)
    changed, untouched, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await cache.put(changed, {user: "MEMBER"})
    await cache.put(untouched, {user: "ADMIN"})
    await invalidate_memberships(rds, changed)
    assert await cache.get(changed, [user]) == {}
    assert await cache.get(untouched, [user]) == {user: "ADMIN"}
