"""Test doubles for token tests: a clock that moves only when told, a JWKS source that counts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from services.auth.keys import KeyRing


class FakeClock:
    """Epoch seconds that advance only through ``advance``."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingJwks:
    """An in-memory JwksSource fed by a KeyRing; counts fetches and can be held at a gate or fail."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self.fetches = 0
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def fetch_jwks(self) -> dict[str, Any]:
        self.fetches += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("auth is down")
        return self.ring.jwks()
