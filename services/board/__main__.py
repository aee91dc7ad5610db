"""``python -m services.board``: the board service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from prometheus_client import ProcessCollector
from wealist.board.v1 import (
    attachment_pb2,
    attachment_pb2_grpc,
    board_pb2,
    board_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    field_option_pb2,
    field_option_pb2_grpc,
    project_pb2,
    project_pb2_grpc,
)

from mesh import (
    Database,
    Hosted,
    MembershipCache,
    RemoteJwks,
    Runtime,
    configure_logging,
    migrate,
    run,
)
from services.board import attachments, membership
from services.board.attachments import AttachmentServicer
from services.board.boards import BoardServicer
from services.board.comments import CommentServicer
from services.board.context import BoardContext
from services.board.directory import Directory
from services.board.events import BoardEventServicer, ProjectHub
from services.board.field_options import FieldOptionServicer
from services.board.notify import Notifier
from services.board.participants import ParticipantServicer
from services.board.projects import ProjectServicer
from services.board.settings import BoardSettings
from services.board.store import ObjectStore

MIGRATIONS = Path(__file__).parent / "migrations"


def _background(runtime: Runtime, work: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
    """Run ``work`` for the life of the process; cancelled at shutdown."""
    task = asyncio.create_task(work(), name=name)

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    runtime.on_shutdown(stop)


async def serve(runtime: Runtime) -> None:
    """Migrate (in dev), then serve the board APIs, the project sockets and the background jobs."""
    settings = runtime.settings
    assert isinstance(settings, BoardSettings)
    url = settings.service_database_url()
    if settings.migrate_on_start:
        await migrate(MIGRATIONS, url)
    database = Database(url)
    runtime.on_shutdown(database.close)
    runtime.verify_users_with(RemoteJwks(runtime.channels))
    ProcessCollector(registry=runtime.metrics.registry)
    directory = Directory(
        runtime.channels, MembershipCache(runtime.redis, ttl_seconds=settings.membership_cache_seconds)
    )
    ctx = BoardContext(
        settings=settings,
        database=database,
        directory=directory,
        redis=runtime.redis,
        store=ObjectStore(settings),
        channels=runtime.channels,
    )
    hub = ProjectHub(ctx, registry=runtime.metrics.registry)
    await hub.start()
    runtime.on_shutdown(hub.close)
    notifier = Notifier(ctx)
    await notifier.start()
    runtime.on_shutdown(notifier.close)
    _background(runtime, lambda: attachments.cleanup_forever(ctx), "board-attachment-cleanup")

    projects = ProjectServicer(ctx)
    options = FieldOptionServicer(ctx)
    boards = BoardServicer(ctx, notifier)
    participants = ParticipantServicer(ctx, notifier)
    comments = CommentServicer(ctx, notifier)
    files = AttachmentServicer(ctx)
    live = BoardEventServicer(ctx, hub)
    _background(runtime, lambda: membership.follow(ctx, live.membership_changed), "board-membership-changes")
    await runtime.serve(
        [
            Hosted(
                project_pb2.DESCRIPTOR.services_by_name["ProjectService"],
                lambda server: project_pb2_grpc.add_ProjectServiceServicer_to_server(projects, server),
            ),
            Hosted(
                field_option_pb2.DESCRIPTOR.services_by_name["FieldOptionService"],
                lambda server: field_option_pb2_grpc.add_FieldOptionServiceServicer_to_server(
                    options, server
                ),
            ),
            Hosted(
                board_pb2.DESCRIPTOR.services_by_name["BoardService"],
                lambda server: board_pb2_grpc.add_BoardServiceServicer_to_server(boards, server),
            ),
            Hosted(
                board_pb2.DESCRIPTOR.services_by_name["ParticipantService"],
                lambda server: board_pb2_grpc.add_ParticipantServiceServicer_to_server(participants, server),
            ),
            Hosted(
                board_pb2.DESCRIPTOR.services_by_name["CommentService"],
                lambda server: board_pb2_grpc.add_CommentServiceServicer_to_server(comments, server),
            ),
            Hosted(
                attachment_pb2.DESCRIPTOR.services_by_name["AttachmentService"],
                lambda server: attachment_pb2_grpc.add_AttachmentServiceServicer_to_server(files, server),
            ),
            Hosted(
                events_pb2.DESCRIPTOR.services_by_name["BoardEventService"],
                lambda server: events_pb2_grpc.add_BoardEventServiceServicer_to_server(live, server),
            ),
        ]
    )


def main() -> None:
    """Entry point."""
    settings = BoardSettings()
    configure_logging(settings.workload, level=settings.log_level, json_lines=settings.log_json)
    run(settings, serve)


if __name__ == "__main__":
    main()
