"""``python -m services.noti``: the notification service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from pathlib import Path

from prometheus_client import ProcessCollector
from wealist.noti.v1 import internal_pb2, internal_pb2_grpc, noti_pb2, noti_pb2_grpc

from mesh import Database, Hosted, RemoteJwks, Runtime, configure_logging, migrate, run
from services.noti import service
from services.noti.counts import UnreadCounts
from services.noti.events import Hub
from services.noti.servicer import NotificationInternalServicer, NotificationServicer
from services.noti.settings import NotiSettings

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger("wealist.noti")


async def prune_forever(database: Database, settings: NotiSettings) -> None:
    """Delete old read notifications every ``prune_interval_seconds`` (each replica; it is idempotent)."""
    retention = timedelta(days=settings.retention_days)
    while True:
        try:
            async with database.unit_of_work() as session:
                pruned = await service.prune(session, retention=retention)
            if pruned:
                log.info("pruned read notifications", extra={"count": pruned})
        except Exception:
            log.exception("pruning read notifications failed")
        await asyncio.sleep(settings.prune_interval_seconds)


async def serve(runtime: Runtime) -> None:
    """Migrate (in dev), then serve the notification API, its stream and the internal methods."""
    settings = runtime.settings
    assert isinstance(settings, NotiSettings)
    url = settings.service_database_url()
    if settings.migrate_on_start:
        await migrate(MIGRATIONS, url)
    database = Database(url)
    runtime.on_shutdown(database.close)
    runtime.verify_users_with(RemoteJwks(runtime.channels))
    # Resident memory and open files on /metrics: what a stream costs is read from there.
    ProcessCollector(registry=runtime.metrics.registry)
    hub = Hub(runtime.redis, queue_size=settings.stream_queue_size, registry=runtime.metrics.registry)
    await hub.start()
    runtime.on_shutdown(hub.close)
    pruning = asyncio.create_task(prune_forever(database, settings), name="noti-prune")

    async def stop_pruning() -> None:
        pruning.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pruning

    runtime.on_shutdown(stop_pruning)
    counts = UnreadCounts(runtime.redis, ttl_seconds=settings.unread_cache_seconds)
    api = NotificationServicer(database, counts, hub)
    internal = NotificationInternalServicer(database, counts, runtime.redis)
    await runtime.serve(
        [
            Hosted(
                noti_pb2.DESCRIPTOR.services_by_name["NotificationService"],
                lambda server: noti_pb2_grpc.add_NotificationServiceServicer_to_server(api, server),
            ),
            Hosted(
                internal_pb2.DESCRIPTOR.services_by_name["NotificationInternalService"],
                lambda server: internal_pb2_grpc.add_NotificationInternalServiceServicer_to_server(
                    internal, server
                ),
            ),
        ]
    )


def main() -> None:
    """Entry point."""
    settings = NotiSettings()
    configure_logging(settings.workload, level=settings.log_level, json_lines=settings.log_json)
    run(settings, serve)


if __name__ == "__main__":
    main()
