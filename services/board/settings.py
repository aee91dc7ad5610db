"""Settings of the board service."""

from __future__ import annotations

from pydantic import Field

from mesh import MeshSettings, S3Settings


class BoardSettings(MeshSettings, S3Settings):
    """The runtime's settings plus the attachment store (``S3Settings``), caches and presence."""

    workload: str = "board"
    # Workspace membership answers from user are cached this long; user invalidates them on change.
    membership_cache_seconds: int = Field(default=30, ge=1)
    # A socket's presence entry lives this long unless refreshed (a ping, or the socket's own timer).
    presence_ttl_seconds: int = Field(default=90, ge=5)
    # Events waiting for one slow socket before it is closed (the client reconnects and refetches).
    socket_queue_size: int = Field(default=256, ge=1)
