"""The Redis client every workload uses."""

from __future__ import annotations

import redis.asyncio as aioredis

# redis-py's default pool refuses the 101st concurrent command (MaxConnectionsError); under a burst of
# calls that each check the token blacklist that is a failed request. A blocking pool makes a command
# wait briefly for a free connection instead, and still bounds what one process opens.
POOL_SIZE = 64
POOL_WAIT_SECONDS = 5.0


def redis_client(url: str, *, pool_size: int = POOL_SIZE) -> aioredis.Redis:
    """A client on a bounded pool whose commands wait for a free connection."""
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=pool_size, timeout=POOL_WAIT_SECONDS)
    # from_pool: closing the client closes the pool too (a pool passed in directly would be left open).
    return aioredis.Redis.from_pool(pool)
