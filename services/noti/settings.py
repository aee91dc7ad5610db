"""Settings of the notification service."""

from __future__ import annotations

from pydantic import Field

from mesh import MeshSettings


class NotiSettings(MeshSettings):
    """The runtime's settings plus retention, the unread-count cache and the live streams' limits."""

    workload: str = "noti"
    # Read notifications older than this are deleted by the periodic pruning (unread ones are kept).
    retention_days: int = Field(default=30, ge=1)
    prune_interval_seconds: float = Field(default=3600.0, gt=0)
    # Cached unread counts live this long at most; every change invalidates them at once anyway.
    unread_cache_seconds: int = Field(default=60, ge=1)
    # Messages waiting for one slow stream client before its stream is closed (it reconnects and
    # fetches what it missed through the listing).
    stream_queue_size: int = Field(default=256, ge=1)
