"""``python -m services.board``: the board service."""

from __future__ import annotations

from pathlib import Path

from mesh import MembershipCache, ObjectStore, Runtime, load_settings, run
from services.board import membership
from services.board.attachments.servicer import AttachmentServicer
from services.board.boards.servicer import BoardServicer
from services.board.comments.servicer import CommentServicer
from services.board.context import BoardContext
from services.board.directory import Directory
from services.board.events import BoardEventServicer, ProjectHub
from services.board.field_options.servicer import FieldOptionServicer
from services.board.models import Attachment
from services.board.notify import Notifier
from services.board.participants.servicer import ParticipantServicer
from services.board.projects.servicer import ProjectServicer
from services.board.settings import BoardSettings


async def build(runtime: Runtime[BoardSettings]) -> list[object]:
    """The board APIs and project sockets, the notification outbox, the attachment clean-up and the
    reactions to membership changes."""
    settings = runtime.settings
    database = await runtime.database(Path(__file__).parent / "migrations")
    store = ObjectStore(settings)
    memberships = MembershipCache(runtime.redis, ttl_seconds=settings.membership_cache_seconds)
    ctx = BoardContext(
        settings=settings,
        database=database,
        directory=Directory(runtime.channels, memberships),
        redis=runtime.redis,
        store=store,
        channels=runtime.channels,
    )
    hub = await runtime.start(ProjectHub(ctx, registry=runtime.metrics.registry))
    notifier = await runtime.start(Notifier(ctx))
    runtime.sweep_uploads(database, store, Attachment, every=settings.cleanup_interval_seconds)
    live = BoardEventServicer(ctx, hub)
    runtime.background(
        lambda: membership.follow(ctx, live.membership_changed), name="board-membership-changes"
    )
    return [
        ProjectServicer(ctx),
        FieldOptionServicer(ctx),
        BoardServicer(ctx, notifier),
        ParticipantServicer(ctx, notifier),
        CommentServicer(ctx, notifier),
        AttachmentServicer(ctx),
        live,
    ]


def main() -> None:
    """Entry point."""
    run(load_settings(BoardSettings), build)


if __name__ == "__main__":
    main()
