"""What every part of the board service works with, built once in ``__main__``."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from mesh import Channels, Database, ObjectStore
from services.board.directory import Directory
from services.board.settings import BoardSettings


@dataclass(frozen=True, slots=True)
class BoardContext:
    """The service's dependencies, handed to each servicer."""

    settings: BoardSettings
    database: Database
    directory: Directory
    redis: aioredis.Redis
    store: ObjectStore
    channels: Channels
