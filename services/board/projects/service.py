"""Projects, their members and join requests, and the settings the kanban is drawn from; no protobuf.

Who may do what (the proto's rule): every member of a project's workspace sees the project; to anyone
else it is NOT_FOUND. A workspace member may create a project and becomes its OWNER. Only the OWNER
updates or deletes the project and changes roles; the OWNER and ADMINs remove members and handle join
requests. There is exactly one OWNER per project: ownership is never assigned and the owner's row never
changes, so ``projects.owner_id`` and the OWNER member row always agree; the one exception is an owner
who leaves the workspace, whose projects pass to the workspace's owner (:mod:`membership`). Leaving a
workspace ends one's memberships and pending requests in its projects, and a request of someone who
left cannot be approved.

The default project of a workspace is the first one created in it (``is_default``); when it is deleted the
oldest remaining project takes its place. Creating and deleting projects of one workspace take a
transaction-scoped advisory lock on the workspace, so two concurrent first projects cannot both become
the default and a deleted default is always replaced.

``GetInitSettings`` also remembers the project as the caller's current one (Redis, one day): the web
client's custom-field dialog creates options without naming a project, and :mod:`field_options` takes
the current project then.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import delete as sql_delete
from sqlalchemy import func, text
from sqlalchemy import update as sql_update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh import (
    AlreadyExists,
    FailedPrecondition,
    Forbidden,
    InvalidField,
    NotFound,
    ObjectStore,
    Unavailable,
    parse_uuid,
)
from services.board.access import Seen, check_dates
from services.board.attachments import service as attachments
from services.board.models import (
    ENTITY_PROJECT,
    REQUEST_APPROVED,
    REQUEST_PENDING,
    REQUEST_REJECTED,
    ROLE_ADMIN,
    ROLE_MEMBER,
    ROLE_OWNER,
    FieldOption,
    Project,
    ProjectJoinRequest,
    ProjectMember,
)

log = logging.getLogger(__name__)

NAME_MIN = 2
NAME_MAX = 100
DESCRIPTION_MAX = 500
SEARCH_DEFAULT_LIMIT = 10
SEARCH_MAX_LIMIT = 100
# How long GetInitSettings' project stays the caller's current one (for option creation without an id).
CURRENT_PROJECT_SECONDS = 24 * 60 * 60

REQUEST_STATUSES = (REQUEST_PENDING, REQUEST_APPROVED, REQUEST_REJECTED)
ASSIGNABLE_ROLES = (ROLE_ADMIN, ROLE_MEMBER)

# The options every new project starts with (the contract's table): field → (value, label, colour).
# Their display order is their position here, from 1.
DEFAULT_OPTIONS: Final[dict[str, tuple[tuple[str, str, str], ...]]] = {
    "stage": (
        ("pending", "대기", "#F59E0B"),
        ("in_progress", "진행중", "#3B82F6"),
        ("review", "검토", "#8B5CF6"),
        ("approved", "완료", "#10B981"),
        ("deleted", "삭제", "#EF4444"),
    ),
    "importance": (
        ("urgent", "긴급", "#EF4444"),
        ("high", "높음", "#F97316"),
        ("normal", "보통", "#10B981"),
        ("low", "낮음", "#6B7280"),
    ),
    "role": (
        ("developer", "개발자", "#8B5CF6"),
        ("planner", "기획자", "#EC4899"),
        ("designer", "디자이너", "#F59E0B"),
        ("qa", "QA", "#06B6D4"),
    ),
}

# init-settings' field descriptions (the contract's) and display names.
FIELD_INFO: Final[dict[str, tuple[str, str]]] = {
    "stage": ("Stage", "Current stage of the board"),
    "importance": ("Importance", "Priority level of the board"),
    "role": ("Role", "Role responsible for the board"),
}
# The web client's custom-field dialog offers option editing only for single_select or multi_select.
INIT_FIELD_TYPE = "single_select"
FIELD_TYPE_INFOS: Final[tuple[tuple[str, str, str], ...]] = (
    ("single_select", "Single select", "Single selection from predefined options"),
    ("select", "Select", "Single selection from predefined options"),
    ("text", "Text", "Free text input"),
    ("date", "Date", "Date selection"),
    ("user", "User", "User selection"),
)


def current_project_key(user_id: uuid.UUID) -> str:
    """The Redis key of the project whose init-settings the user loaded last."""
    return f"board:current-project:{user_id}"


async def current_project(redis: aioredis.Redis, user_id: uuid.UUID) -> uuid.UUID | None:
    """The user's current project (see :func:`current_project_key`), if one is remembered."""
    try:
        raw: bytes | str | None = await redis.get(current_project_key(user_id))
    except RedisError:
        raise Unavailable("the current project cannot be read; send projectId") from None
    if raw is None:
        return None
    value = raw.decode() if isinstance(raw, bytes) else raw
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def current_time() -> datetime:
    """When a project, membership or request changes."""
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------------
# Validation


def clean_name(value: str) -> str:
    name = value.strip()
    if not NAME_MIN <= len(name) <= NAME_MAX:
        raise InvalidField("name", f"must be {NAME_MIN}-{NAME_MAX} characters")
    return name


def clean_description(value: str) -> str:
    description = value.strip()
    if len(description) > DESCRIPTION_MAX:
        raise InvalidField("description", f"must be at most {DESCRIPTION_MAX} characters")
    return description


def parse_workspace_id(value: str) -> uuid.UUID:
    if not value.strip():
        raise InvalidField("workspaceId", "Workspace ID is required")
    return parse_uuid(value, field="workspaceId")


def parse_status(value: str, *, allowed: Sequence[str], field: str = "status") -> str:
    status = value.strip().upper()
    if status not in allowed:
        raise InvalidField(field, f"must be one of {', '.join(allowed)}")
    return status


def search_bounds(page: int, limit: int) -> tuple[int, int]:
    """The contract's paging: page ≥ 1 (else 1), limit 1-100 (else 10)."""
    return (page if page >= 1 else 1, limit if 1 <= limit <= SEARCH_MAX_LIMIT else SEARCH_DEFAULT_LIMIT)


def _like(query: str) -> str:
    """An ILIKE pattern matching ``query`` literally anywhere (its % and _ are not wildcards)."""
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --------------------------------------------------------------------------------------------------
# Domain functions: keyword-only, session first, no protobuf.


async def _lock_workspace(session: AsyncSession, workspace_id: uuid.UUID) -> None:
    """Serialise project creation and deletion within one workspace (until the transaction ends)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"board:workspace-projects:{workspace_id}"},
    )


async def create_default_options(session: AsyncSession, project_id: uuid.UUID) -> list[FieldOption]:
    """The contract's 13 default stage, importance and role options of a new project (not committed)."""
    now = current_time()
    rows = [
        FieldOption(
            project_id=project_id,
            field_type=field_type,
            value=value,
            label=label,
            color=color,
            display_order=order,
            created_at=now,
            updated_at=now,
        )
        for field_type, options in DEFAULT_OPTIONS.items()
        for order, (value, label, color) in enumerate(options, start=1)
    ]
    session.add_all(rows)
    await session.flush()
    return rows


async def create_project(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    owner_id: uuid.UUID,
    name: str,
    description: str,
    start_date: datetime | None,
    due_date: datetime | None,
    attachment_ids: Sequence[uuid.UUID],
    store: ObjectStore,
) -> Project:
    """A project with its OWNER member, the default options and the confirmed attachments."""
    await _lock_workspace(session, workspace_id)
    has_projects = await session.scalar(
        select(col(Project.id)).where(col(Project.workspace_id) == workspace_id).limit(1)
    )
    now = current_time()
    project = Project(
        workspace_id=workspace_id,
        owner_id=owner_id,
        name=name,
        description=description,
        start_date=start_date,
        due_date=due_date,
        is_default=has_projects is None,
        created_at=now,
        updated_at=now,
    )
    session.add(project)
    await session.flush()
    session.add(ProjectMember(project_id=project.id, user_id=owner_id, role_name=ROLE_OWNER, joined_at=now))
    await create_default_options(session, project.id)
    await attachments.confirm(
        session,
        ids=attachment_ids,
        entity_type=ENTITY_PROJECT,
        entity_id=project.id,
        project=project,
        user_id=owner_id,
        store=store,
    )
    return project


async def delete_project(session: AsyncSession, *, project: Project) -> list[uuid.UUID]:
    """Delete the project (its rows cascade); the ids of its files, to purge after the commit.

    The workspace lock comes first and no project row is locked before it (two deletes in one workspace
    would otherwise deadlock on the promotion of the next default); ``is_default`` is read back from the
    delete itself, so a promotion committed meanwhile by another delete is seen.
    """
    await _lock_workspace(session, project.workspace_id)
    released = await attachments.release(session, project_id=project.id)
    was_default = await session.scalar(
        sql_delete(Project).where(col(Project.id) == project.id).returning(col(Project.is_default))
    )
    if was_default is None:
        raise NotFound("Project not found")
    if was_default:
        # The oldest remaining project becomes the workspace's default.
        oldest = (
            select(col(Project.id))
            .where(col(Project.workspace_id) == project.workspace_id)
            .order_by(col(Project.created_at), col(Project.id))
            .limit(1)
            .scalar_subquery()
        )
        await session.execute(sql_update(Project).where(col(Project.id) == oldest).values(is_default=True))
    return released


async def list_projects(session: AsyncSession, *, workspace_id: uuid.UUID) -> list[Project]:
    """Every project of the workspace, newest first."""
    rows = await session.exec(
        select(Project)
        .where(col(Project.workspace_id) == workspace_id)
        .order_by(col(Project.created_at).desc(), col(Project.id).desc())
    )
    return list(rows)


async def search_projects(
    session: AsyncSession, *, workspace_id: uuid.UUID, query: str, page: int, limit: int
) -> tuple[list[Project], int]:
    """One page of the workspace's projects whose name or description contains ``query``, and the total."""
    pattern = _like(query)
    matches = (col(Project.workspace_id) == workspace_id) & (
        col(Project.name).ilike(pattern, escape="\\") | col(Project.description).ilike(pattern, escape="\\")
    )
    total = await session.scalar(select(func.count()).select_from(Project).where(matches))
    rows = await session.exec(
        select(Project)
        .where(matches)
        .order_by(col(Project.created_at).desc(), col(Project.id).desc())
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return list(rows), int(total or 0)


async def default_project(session: AsyncSession, *, workspace_id: uuid.UUID) -> Project:
    """The workspace's default project; NOT_FOUND when it has none."""
    project = await session.scalar(
        select(Project).where(col(Project.workspace_id) == workspace_id, col(Project.is_default))
    )
    if project is None:
        raise NotFound("Default project not found")
    return project


async def field_options(session: AsyncSession, *, project_id: uuid.UUID) -> list[FieldOption]:
    """Every option of the project, by field and display order."""
    rows = await session.exec(
        select(FieldOption)
        .where(col(FieldOption.project_id) == project_id)
        .order_by(col(FieldOption.display_order), col(FieldOption.created_at), col(FieldOption.value))
    )
    return list(rows)


async def list_members(session: AsyncSession, *, project_id: uuid.UUID) -> list[ProjectMember]:
    """The project's members in the order they joined."""
    rows = await session.exec(
        select(ProjectMember)
        .where(col(ProjectMember.project_id) == project_id)
        .order_by(col(ProjectMember.joined_at), col(ProjectMember.id))
    )
    return list(rows)


async def _member_or_raise(
    session: AsyncSession, *, project_id: uuid.UUID, user_id: uuid.UUID
) -> ProjectMember:
    member = await session.scalar(
        select(ProjectMember)
        .where(col(ProjectMember.project_id) == project_id, col(ProjectMember.user_id) == user_id)
        .with_for_update()
    )
    if member is None:
        raise NotFound("Member not found")
    return member


async def remove_member(session: AsyncSession, *, seen: Seen, user_id: uuid.UUID, actor: uuid.UUID) -> None:
    """Remove a member (the caller manages the project; never the owner, never oneself)."""
    if not seen.manages:
        raise Forbidden("Only project owner or admin can remove members")
    member = await _member_or_raise(session, project_id=seen.project.id, user_id=user_id)
    if member.role_name == ROLE_OWNER:
        raise InvalidField("memberId", "Cannot remove project owner")
    if member.user_id == actor:
        raise InvalidField("memberId", "Cannot remove yourself from the project")
    await session.delete(member)


async def change_role(session: AsyncSession, *, seen: Seen, user_id: uuid.UUID, role: str) -> ProjectMember:
    """Make a member ADMIN or MEMBER (the caller is the OWNER; the owner's own role never changes)."""
    if seen.project_role != ROLE_OWNER:
        raise Forbidden("Only project owner can change member roles")
    member = await _member_or_raise(session, project_id=seen.project.id, user_id=user_id)
    if member.role_name == ROLE_OWNER:
        raise InvalidField("memberId", "Cannot change project owner role")
    member.role_name = role
    session.add(member)
    await session.flush()
    return member


async def list_join_requests(
    session: AsyncSession, *, project_id: uuid.UUID, status: str | None
) -> list[ProjectJoinRequest]:
    """The project's join requests, newest first, optionally of one status."""
    query = select(ProjectJoinRequest).where(col(ProjectJoinRequest.project_id) == project_id)
    if status is not None:
        query = query.where(col(ProjectJoinRequest.status) == status)
    rows = await session.exec(
        query.order_by(col(ProjectJoinRequest.requested_at).desc(), col(ProjectJoinRequest.id).desc())
    )
    return list(rows)


ALREADY_MEMBER = "User is already a member of this project"
PENDING_EXISTS = "User already has a pending join request for this project"


async def create_join_request(session: AsyncSession, *, seen: Seen, user_id: uuid.UUID) -> ProjectJoinRequest:
    """A PENDING request of ``user_id`` to join the project (not a member, no other pending request)."""
    if seen.project_role is not None:
        raise AlreadyExists(ALREADY_MEMBER, code="ALREADY_MEMBER")
    pending = await session.scalar(
        select(col(ProjectJoinRequest.id)).where(
            col(ProjectJoinRequest.project_id) == seen.project.id,
            col(ProjectJoinRequest.user_id) == user_id,
            col(ProjectJoinRequest.status) == REQUEST_PENDING,
        )
    )
    if pending is not None:
        raise AlreadyExists(PENDING_EXISTS, code="PENDING_REQUEST_EXISTS")
    now = current_time()
    request = ProjectJoinRequest(
        project_id=seen.project.id, user_id=user_id, status=REQUEST_PENDING, requested_at=now, updated_at=now
    )
    session.add(request)
    try:
        await session.flush()
    except IntegrityError:
        # A concurrent request won the race for the partial unique index on PENDING requests.
        raise AlreadyExists(PENDING_EXISTS, code="PENDING_REQUEST_EXISTS") from None
    return request


async def decide_join_request(
    session: AsyncSession, *, seen: Seen, request: ProjectJoinRequest, status: str
) -> ProjectJoinRequest:
    """Approve (the requester becomes a MEMBER) or reject a PENDING request (the caller manages it)."""
    if not seen.manages:
        raise Forbidden("Only project owner or admin can update join requests")
    if request.status != REQUEST_PENDING:
        raise FailedPrecondition("Join request has already been processed", code="VALIDATION_ERROR")
    now = current_time()
    request.status = status
    request.updated_at = now
    session.add(request)
    if status == REQUEST_APPROVED:
        await session.execute(
            insert(ProjectMember)
            .values(
                id=uuid.uuid4(),
                project_id=request.project_id,
                user_id=request.user_id,
                role_name=ROLE_MEMBER,
                joined_at=now,
            )
            .on_conflict_do_nothing(index_elements=["project_id", "user_id"])
        )
    await session.flush()
    return request


async def update_project(
    session: AsyncSession,
    *,
    seen: Seen,
    user_id: uuid.UUID,
    name: str | None,
    description: str | None,
    start_date: datetime | None,
    due_date: datetime | None,
    attachment_ids: Sequence[uuid.UUID],
    store: ObjectStore,
) -> Project:
    """Change the fields that are given (the caller is the OWNER; ``seen`` locked); attachments are added."""
    if seen.project_role != ROLE_OWNER:
        raise Forbidden("Only project owner can update project")
    project = seen.project
    # Dates cannot be cleared; the order is checked on the values the project will have.
    check_dates(start_date or project.start_date, due_date or project.due_date)
    if name is not None:
        project.name = name
    if description is not None:
        project.description = description
    if start_date is not None:
        project.start_date = start_date
    if due_date is not None:
        project.due_date = due_date
    project.updated_at = current_time()
    session.add(project)
    await session.flush()
    await attachments.confirm(
        session,
        ids=attachment_ids,
        entity_type=ENTITY_PROJECT,
        entity_id=project.id,
        project=project,
        user_id=user_id,
        store=store,
    )
    return project


async def get_join_request_for_update(session: AsyncSession, *, request_id: uuid.UUID) -> ProjectJoinRequest:
    """The join request, locked until the transaction ends; NOT_FOUND when there is none."""
    row = await session.scalar(
        select(ProjectJoinRequest).where(col(ProjectJoinRequest.id) == request_id).with_for_update()
    )
    if row is None:
        raise NotFound("Join request not found")
    return row
