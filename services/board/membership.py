"""What the board service does when a workspace's memberships change (the user service's signal).

The user service appends every committed change to the membership stream (``mesh/_membership.py``).
The board service reacts twice:

- Once per change, on one replica (consumer group ``board``, retried until handled): users removed from
  the workspace lose their project memberships and their pending project join requests in its projects,
  so coming back to the workspace does not bring back old project roles. A project one of them owned
  passes to the workspace's owner (who can never be removed), so every project keeps exactly one OWNER
  and stays administrable. Rows written after the change are left alone: a user removed, invited back
  and let into a project again keeps that new membership even if the change is handled late.
- On every replica, at once: the open project sockets of the workspace check again whether their user
  still sees the project (:meth:`services.board.events.BoardEventServicer.membership_changed`).

Both are idempotent, as the stream may hand a change over twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import delete as sql_delete
from sqlalchemy import update as sql_update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh import (
    MembershipChange,
    NotFound,
    follow_membership_changes,
    run_until_cancelled,
    tail_membership_changes,
)
from services.board.context import BoardContext
from services.board.directory import Directory
from services.board.models import (
    REQUEST_PENDING,
    ROLE_OWNER,
    Project,
    ProjectJoinRequest,
    ProjectMember,
)

log = logging.getLogger(__name__)

GROUP = "board"


async def forget_removed(
    session: AsyncSession,
    directory: Directory,
    *,
    workspace_id: uuid.UUID,
    removed: Sequence[uuid.UUID],
    before: datetime,
) -> int:
    """Drop the removed users' project memberships and pending join requests in the workspace's projects
    (those written up to ``before``); hand the projects they owned to the workspace's owner. Returns how
    many memberships went."""
    if not removed:
        return 0
    in_workspace = select(col(Project.id)).where(col(Project.workspace_id) == workspace_id)
    # Locked first, in id order, so a concurrent project delete or a second handler of the same change
    # waits instead of interleaving with the owner hand-over.
    owned = list(
        (
            await session.exec(
                select(Project)
                .where(
                    col(Project.workspace_id) == workspace_id,
                    col(Project.owner_id).in_(removed),
                    # Not a project they created after coming back.
                    col(Project.created_at) <= before,
                )
                .order_by(col(Project.id))
                .with_for_update()
            )
        ).all()
    )
    dropped = await session.exec(
        sql_delete(ProjectMember)
        .where(
            col(ProjectMember.project_id).in_(in_workspace),
            col(ProjectMember.user_id).in_(removed),
            col(ProjectMember.joined_at) <= before,
        )
        .returning(col(ProjectMember.id))
    )
    count = len(dropped.all())
    await session.exec(
        sql_delete(ProjectJoinRequest).where(
            col(ProjectJoinRequest.project_id).in_(in_workspace),
            col(ProjectJoinRequest.user_id).in_(removed),
            col(ProjectJoinRequest.status) == REQUEST_PENDING,
            col(ProjectJoinRequest.requested_at) <= before,
        )
    )
    if owned:
        await _hand_over(session, directory, workspace_id, owned)
    return count


async def _hand_over(
    session: AsyncSession, directory: Directory, workspace_id: uuid.UUID, projects: Sequence[Project]
) -> None:
    """Make the workspace's owner the OWNER of ``projects`` (their owner left the workspace)."""
    try:
        heir = (await directory.workspace(workspace_id)).owner_id
    except NotFound:
        # The workspace is gone: its projects are invisible to everyone, nobody needs to administer them.
        return
    now = datetime.now(UTC)
    for project in projects:
        # Their role in the project, if they had one, becomes OWNER; the unique (project, user) holds.
        await session.execute(
            insert(ProjectMember)
            .values(id=uuid.uuid4(), project_id=project.id, user_id=heir, role_name=ROLE_OWNER, joined_at=now)
            .on_conflict_do_update(index_elements=["project_id", "user_id"], set_={"role_name": ROLE_OWNER})
        )
        await session.execute(
            sql_update(Project).where(col(Project.id) == project.id).values(owner_id=heir, updated_at=now)
        )
        log.info("project %s passed to the owner of workspace %s", project.id, workspace_id)


async def follow(ctx: BoardContext, on_change: Callable[[MembershipChange], None]) -> None:
    """Both reactions to membership changes, for the life of the process (cancel to stop)."""

    async def durable(change: MembershipChange) -> None:
        if not change.removed:
            return
        async with ctx.database.unit_of_work() as session:
            count = await forget_removed(
                session,
                ctx.directory,
                workspace_id=change.workspace_id,
                removed=change.removed,
                before=datetime.fromtimestamp(change.at, UTC),
            )
        if count:
            log.info("dropped %d project memberships after change %s", count, change.entry_id)

    async def live(change: MembershipChange) -> None:
        on_change(change)

    await run_until_cancelled(
        lambda stop: follow_membership_changes(ctx.redis, group=GROUP, handle=durable, stop=stop),
        lambda stop: tail_membership_changes(ctx.redis, handle=live, stop=stop),
    )
