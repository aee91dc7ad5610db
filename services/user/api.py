"""What every part of the user API holds: the base class of each noun's servicer."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import redis.asyncio as aioredis
from wealist.user.v1 import user_pb2_grpc

from mesh import Database, ObjectStore, invalidate_memberships


class UserApi(user_pb2_grpc.UserServiceServicer):
    """One noun's share of ``UserService``; :class:`services.user.servicer.UserServicer` joins them.

    The proto declares one service for all the nouns, and one servicer object serves it, so each noun's
    methods are a class of their own and the service is their union.
    """

    def __init__(self, database: Database, store: ObjectStore, redis: aioredis.Redis) -> None:
        self.database = database
        self.store = store
        self.redis = redis

    async def _memberships_changed(
        self, workspace_id: uuid.UUID, *, removed: Sequence[uuid.UUID] = ()
    ) -> None:
        """After a committed membership change: other services' cached answers for it are stale, and
        those that keep state per member (board's project memberships) hear who was ``removed``."""
        await invalidate_memberships(self.redis, workspace_id, removed=removed)
