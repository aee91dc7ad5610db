"""``python -m services.noti``: the notification service."""

from __future__ import annotations

from pathlib import Path

from mesh import Runtime, load_settings, run
from services.noti.counts import UnreadCounts
from services.noti.events import Hub
from services.noti.service import prune_forever
from services.noti.servicer import NotificationInternalServicer, NotificationServicer
from services.noti.settings import NotiSettings


async def build(runtime: Runtime[NotiSettings]) -> list[object]:
    """The notification API with its live stream, the internal methods, and the pruning of old ones."""
    settings = runtime.settings
    database = await runtime.database(Path(__file__).parent / "migrations")
    hub = await runtime.start(
        Hub(runtime.redis, queue_size=settings.stream_queue_size, registry=runtime.metrics.registry)
    )
    runtime.background(lambda: prune_forever(database, settings), name="noti-prune")
    counts = UnreadCounts(runtime.redis, ttl_seconds=settings.unread_cache_seconds)
    return [
        NotificationServicer(database, counts, hub),
        NotificationInternalServicer(database, counts, runtime.redis),
    ]


def main() -> None:
    """Entry point."""
    run(load_settings(NotiSettings), build)


if __name__ == "__main__":
    main()
