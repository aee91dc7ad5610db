"""The kanban's boards: list, create, read, update, delete, move.

Who may do which is :mod:`access`'s rule: project members create boards; project members and a board's
author and assignee change it; its author, assignee or a project OWNER/ADMIN delete it.

Every method runs in one unit of work; events to the project's sockets are published and the outbox's
notifications poked only after the commit, and files of a deleted board are purged from S3 after it. A
board's custom fields are stored as option ids and spoken as option values (:mod:`fields`), so the
Board in a response, in a list and in an event payload are the same JSON (:func:`board_json`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    Text,
    Uuid,
    bindparam,
    case,
    cast,
    extract,
    func,
    inspect,
)
from sqlalchemy import delete as sql_delete
from sqlalchemy import select as sql_select
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from wealist.board.v1 import board_pb2, board_pb2_grpc, common_pb2

from mesh import (
    Context,
    InvalidField,
    ObjectStore,
    caller_id,
    optional_datetime,
    parse_uuid,
    parse_uuids,
    timestamp,
)
from services.board import events, fields
from services.board.access import (
    check_dates,
    require_board_deleter,
    require_board_editor,
    require_member,
    require_project_member,
    see_board,
    see_project,
)
from services.board.attachments import service as attachments
from services.board.attachments import servicer as attachment_api
from services.board.context import BoardContext
from services.board.directory import Directory
from services.board.models import (
    ATTACHMENT_CONFIRMED,
    ENTITY_BOARD,
    ENTITY_COMMENT,
    FIELD_TYPES,
    Attachment,
    Board,
    Comment,
    FieldOption,
    Participant,
    Project,
)
from services.board.notify import BOARD_ASSIGNED, BOARD_PARTICIPANT_ADDED, BOARD_UPDATED, Notifier

log = logging.getLogger(__name__)

MAX_TITLE = 200
MAX_CONTENT = 5000
MAX_PARTICIPANTS = 50
NOT_A_MEMBER = "must be a member of the workspace"
# What a BOARD_UPDATED notification shows for a content change (the contract's text; the content itself
# may be 5000 characters and is not repeated in the notification).
CONTENT_CHANGED = "(내용 변경)"
MOVED = "Board moved successfully"


def board_json(message: board_pb2.Board) -> dict[str, Any]:
    """The Board as the REST response shows it (camelCase, empty lists printed): the event payload."""
    document: dict[str, Any] = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    return document


def board_message(
    board: Board,
    project: Project,
    options: fields.ProjectOptions,
    participant_ids: Sequence[uuid.UUID],
    files: Sequence[common_pb2.AttachmentInline],
) -> board_pb2.Board:
    """The contract's Board, with custom fields as option values."""
    return board_pb2.Board(
        board_id=str(board.id),
        project_id=str(board.project_id),
        workspace_id=str(project.workspace_id),
        author_id=str(board.author_id),
        assignee_id=str(board.assignee_id) if board.assignee_id is not None else None,
        title=board.title,
        content=board.content,
        custom_fields=options.to_values(board.custom_fields),
        start_date=timestamp(board.start_date),
        due_date=timestamp(board.due_date),
        participant_ids=[str(user) for user in participant_ids],
        attachments=files,
        created_at=timestamp(board.created_at),
        updated_at=timestamp(board.updated_at),
    )


def participant_message(row: Participant) -> board_pb2.Participant:
    """The contract's Participant."""
    return board_pb2.Participant(
        id=str(row.id),
        participant_id=str(row.id),
        board_id=str(row.board_id),
        user_id=str(row.user_id),
        created_at=timestamp(row.created_at),
    )


def comment_message(row: Comment, files: Sequence[common_pb2.AttachmentInline]) -> board_pb2.Comment:
    """The contract's Comment with its attachments."""
    return board_pb2.Comment(
        comment_id=str(row.id),
        board_id=str(row.board_id),
        user_id=str(row.user_id),
        content=row.content,
        attachments=files,
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.updated_at),
    )


async def participant_rows(session: AsyncSession, board_ids: Sequence[uuid.UUID]) -> list[Participant]:
    """The participants of the boards, in the order they were added (one query)."""
    if not board_ids:
        return []
    statement = (
        select(Participant)
        .where(col(Participant.board_id).in_(board_ids))
        .order_by(col(Participant.created_at), col(Participant.id))
    )
    return list((await session.exec(statement)).all())


async def participants_of(
    session: AsyncSession, board_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Participant user ids per board, in the order they were added (one query)."""
    found: dict[uuid.UUID, list[uuid.UUID]] = {board_id: [] for board_id in board_ids}
    for row in await participant_rows(session, board_ids):
        found[row.board_id].append(row.user_id)
    return found


async def board_messages(
    session: AsyncSession,
    ctx: BoardContext,
    project: Project,
    options: fields.ProjectOptions,
    boards: Sequence[Board],
) -> list[board_pb2.Board]:
    """Boards of one project as messages: one query for participants, one for attachments."""
    ids = [board.id for board in boards]
    people = await participants_of(session, ids)
    files = await attachment_api.inline(session, ctx.store, ENTITY_BOARD, ids) if ids else {}
    return [
        board_message(board, project, options, people[board.id], files.get(board.id, [])) for board in boards
    ]


# --- the listing ------------------------------------------------------------------------------------------
# ListBoards is the kanban's hot read (every board of a project, on every screen load and reconnect), so it
# reads plain rows with Core selects instead of ORM objects and builds the messages straight from them:
# ids come back as text (no UUID objects to make and print again), timestamps as microseconds since the
# epoch, each board's participants as an array in the same query, and attachments are fetched only for the
# boards that have some. The JSON is the same as :func:`board_message` gives (tests/board/test_board_list.py).

_PROJECTS_TABLE = inspect(Project).local_table
_OPTIONS_TABLE = inspect(FieldOption).local_table
_PROJECTS = _PROJECTS_TABLE.c
_BOARDS = inspect(Board).local_table.c
_PEOPLE = inspect(Participant).local_table.c
_FILES = inspect(Attachment).local_table.c


# The project's workspace and its options, in one query: the workspace id of every row, then each option's
# columns (NULLs when the project has none); no row when there is no such project.
_PROJECT_AND_OPTIONS = (
    sql_select(_PROJECTS.workspace_id, *fields.OPTION_COLUMNS)
    .select_from(_PROJECTS_TABLE.outerjoin(_OPTIONS_TABLE, fields.OPTIONS.project_id == _PROJECTS.id))
    .where(_PROJECTS.id == bindparam("project_id", type_=Uuid()))
)


async def _project_and_options(
    session: AsyncSession, project_id: uuid.UUID
) -> tuple[uuid.UUID | None, fields.ProjectOptions]:
    """The project's workspace (``None`` when there is no such project) and its options."""
    connection = await session.connection()
    rows = (await connection.execute(_PROJECT_AND_OPTIONS, {"project_id": project_id})).all()
    if not rows:
        return None, fields.options_from(())
    return rows[0][0], fields.options_from(fields.Option(*row[1:]) for row in rows if row[1] is not None)


def _text(column: ColumnElement[Any]) -> ColumnElement[str]:
    return cast(column, Text)


def _epoch_us(column: ColumnElement[Any]) -> ColumnElement[int]:
    """Microseconds since the epoch, computed by Postgres (exact: ``extract`` gives a numeric since 14)."""
    return cast(extract("epoch", column) * 1_000_000, BigInteger)


def _stored_option(field: str) -> ColumnElement[str | None]:
    """The option id a board stores for ``field``, as text; NULL when it has none.

    Three text columns instead of the JSONB document: decoding 200 small JSON documents costs more than
    the rest of the rows. A JSON null (never written by the service) reads as "", which, like the
    ``str(None)`` of :meth:`fields.ProjectOptions.value`, is no option's id.
    """
    stored = _BOARDS.custom_fields
    return case((stored.has_key(field), func.coalesce(stored[field].astext, "")))


def _stamp(micros: int | None) -> dict[str, int] | None:
    """A Timestamp's fields from microseconds since the epoch (what ``Timestamp.FromDatetime`` gives)."""
    if micros is None:
        return None
    seconds, fraction = divmod(micros, 1_000_000)
    return {"seconds": seconds, "nanos": fraction * 1000}


def _listings() -> tuple[Select[Any], Select[Any]]:
    """A project's boards, oldest first, with their participants' ids and whether they have files; then the
    same filtered by ``custom_fields @> :contains`` (served by the GIN index). Built once, so SQLAlchemy
    computes their cache keys once; parameters ``project_id`` and ``contains``.
    """
    people = (
        sql_select(_text(_PEOPLE.user_id))
        .where(_PEOPLE.board_id == _BOARDS.id)
        .order_by(_PEOPLE.created_at, _PEOPLE.id)
        .scalar_subquery()
    )
    has_files = (
        sql_select(_FILES.id)
        .where(
            _FILES.entity_type == ENTITY_BOARD,
            _FILES.entity_id == _BOARDS.id,
            _FILES.status == ATTACHMENT_CONFIRMED,
        )
        .exists()
    )
    statement = sql_select(
        _text(_BOARDS.id),
        _text(_BOARDS.author_id),
        _text(_BOARDS.assignee_id),
        _BOARDS.title,
        _BOARDS.content,
        _epoch_us(_BOARDS.start_date),
        _epoch_us(_BOARDS.due_date),
        _epoch_us(_BOARDS.created_at),
        _epoch_us(_BOARDS.updated_at),
        # ARRAY(SELECT ...): the ids in the order they were added, '{}' for none.
        func.array(people),
        has_files,
        # Last, in FIELD_TYPES' order, as many as there are.
        *(_stored_option(field) for field in FIELD_TYPES),
    ).where(_BOARDS.project_id == bindparam("project_id", type_=Uuid()))
    filtered = statement.where(_BOARDS.custom_fields.contains(bindparam("contains", type_=JSONB())))
    order = (_BOARDS.created_at, _BOARDS.id)
    return statement.order_by(*order), filtered.order_by(*order)


_LISTING, _LISTING_FILTERED = _listings()
# What an unfiltered listing of a project without files runs (bench/board_list.py measures it on Postgres).
LISTING_STATEMENTS: tuple[Select[Any], ...] = (_PROJECT_AND_OPTIONS, _LISTING)


async def list_boards(
    session: AsyncSession,
    store: ObjectStore,
    *,
    project_id: uuid.UUID,
    workspace_id: uuid.UUID,
    options: fields.ProjectOptions,
    contains: dict[str, str] | None,
) -> board_pb2.ListBoardsResponse:
    """The listing's response: one query for the boards and their participants, one for their files."""
    connection = await session.connection()
    if contains:
        result = await connection.execute(_LISTING_FILTERED, {"project_id": project_id, "contains": contains})
    else:
        result = await connection.execute(_LISTING, {"project_id": project_id})
    rows = result.all()
    with_files = [uuid.UUID(row[0]) for row in rows if row[10]]
    files = await attachment_api.inline(session, store, ENTITY_BOARD, with_files) if with_files else {}
    response = board_pb2.ListBoardsResponse()
    add = response.boards.add
    project, workspace = str(project_id), str(workspace_id)
    write_values = options.write_values
    for (
        board_id,
        author_id,
        assignee_id,
        title,
        content,
        start,
        due,
        created,
        updated,
        people,
        has_files,
        *option_ids,
    ) in rows:
        board = add(
            board_id=board_id,
            project_id=project,
            workspace_id=workspace,
            author_id=author_id,
            assignee_id=assignee_id,
            title=title,
            content=content,
            start_date=_stamp(start),
            due_date=_stamp(due),
            participant_ids=people,
            attachments=files[uuid.UUID(board_id)] if has_files else (),
            created_at=_stamp(created),
            updated_at=_stamp(updated),
        )
        write_values(board.custom_fields, option_ids)
    return response


async def announce(
    ctx: BoardContext, project_id: uuid.UUID, event_type: str, payload: dict[str, Any], board_id: uuid.UUID
) -> None:
    """Publish a board event after the commit; a Redis failure is logged, not reported to the caller.

    The change is committed whatever happens here, and clients refetch the list when they reconnect.
    """
    try:
        await events.publish(ctx.redis, project_id, event_type, payload, board_id=board_id)
    except Exception:
        log.exception("publishing %s for board %s failed", event_type, board_id)


def clean_title(raw: str) -> str:
    """A board title: trimmed, 1-200 characters."""
    title = raw.strip()
    if not title:
        raise InvalidField("title", "must not be empty")
    if len(title) > MAX_TITLE:
        raise InvalidField("title", f"must be at most {MAX_TITLE} characters")
    return title


def clean_content(raw: str) -> str:
    """A board's content: at most 5000 characters."""
    if len(raw) > MAX_CONTENT:
        raise InvalidField("content", f"must be at most {MAX_CONTENT} characters")
    return raw


def _participant_ids(values: Sequence[str]) -> list[uuid.UUID]:
    people = parse_uuids(values, field="participants")
    if len(people) > MAX_PARTICIPANTS:
        raise InvalidField("participants", f"at most {MAX_PARTICIPANTS} participants")
    return people


def attachment_ids(values: Sequence[str]) -> list[uuid.UUID]:
    """Attachment ids of a request, duplicates and nil UUIDs dropped (the web client sends nil ones)."""
    return [value for value in parse_uuids(values, field="attachmentIds") if value.int != 0]


async def check_members(
    directory: Directory,
    workspace_id: uuid.UUID,
    *,
    assignee: uuid.UUID | None,
    participants: Sequence[uuid.UUID],
) -> None:
    """INVALID_ARGUMENT naming assigneeId or participants for a user outside the workspace (one lookup)."""
    wanted = ([assignee] if assignee is not None else []) + list(participants)
    if not wanted:
        return
    roles = await directory.roles(workspace_id, wanted)
    if assignee is not None and roles.get(assignee) is None:
        raise InvalidField("assigneeId", NOT_A_MEMBER)
    strangers = [str(user) for user in participants if roles.get(user) is None]
    if strangers:
        raise InvalidField("participants", f"{NOT_A_MEMBER}: {', '.join(strangers)}")


def _day(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d") if value is not None else ""


def _changes(before: Board, after: Board, options: fields.ProjectOptions) -> list[dict[str, str]]:
    """What a BOARD_UPDATED notification lists: {field, oldValue, newValue}; custom fields as labels."""
    changes: list[dict[str, str]] = []

    def note(field: str, old: str, new: str) -> None:
        changes.append({"field": field, "oldValue": old, "newValue": new})

    if before.title != after.title:
        note("title", before.title, after.title)
    if before.content != after.content:
        note("content", CONTENT_CHANGED, CONTENT_CHANGED)
    if before.assignee_id != after.assignee_id:
        note("assignee", str(before.assignee_id or ""), str(after.assignee_id or ""))
    if before.start_date != after.start_date:
        note("startDate", _day(before.start_date), _day(after.start_date))
    if before.due_date != after.due_date:
        note("dueDate", _day(before.due_date), _day(after.due_date))
    for field in FIELD_TYPES:
        old, new = before.custom_fields.get(field), after.custom_fields.get(field)
        if old != new:
            note(field, options.label(old), options.label(new))
    return changes


def _snapshot(board: Board) -> Board:
    """A detached copy of the fields a change notification compares."""
    return Board(
        id=board.id,
        project_id=board.project_id,
        author_id=board.author_id,
        assignee_id=board.assignee_id,
        title=board.title,
        content=board.content,
        custom_fields=dict(board.custom_fields or {}),
        start_date=board.start_date,
        due_date=board.due_date,
    )


@dataclass(frozen=True, slots=True)
class BoardEdit:
    """An UpdateBoard request, validated: ``None`` for what the request leaves as it is."""

    board_id: uuid.UUID
    project_id: uuid.UUID | None
    title: str | None
    content: str | None
    custom_fields: dict[str, str] | None
    assignee: uuid.UUID | None
    participants: list[uuid.UUID] | None
    # Dates cannot be cleared (as in the contract): None leaves them as they are.
    start_date: datetime | None
    due_date: datetime | None
    attachment_ids: list[uuid.UUID]

    def apply(self, board: Board, options: fields.ProjectOptions) -> None:
        """Set the board's own columns (not participants, assignee or files); dates checked as they end up."""
        if self.title is not None:
            board.title = self.title
        if self.content is not None:
            board.content = self.content
        if self.custom_fields is not None:
            board.custom_fields = options.to_ids(self.custom_fields)
        if self.start_date is not None:
            board.start_date = self.start_date
        if self.due_date is not None:
            board.due_date = self.due_date
        # Checked on the effective values: a new start date must not pass the stored due date.
        check_dates(board.start_date, board.due_date)


def parse_edit(request: board_pb2.UpdateBoardRequest) -> BoardEdit:
    """Validate an UpdateBoard request (the checks that need no database)."""
    custom_fields = None
    if request.HasField("custom_fields"):
        custom_fields = fields.string_values(json_format.MessageToDict(request.custom_fields))
    people: list[uuid.UUID] | None = None
    if request.HasField("participants"):
        raw = []
        for value in request.participants.values:
            if value.WhichOneof("kind") != "string_value":
                raise InvalidField("participants", "must be a list of user ids")
            raw.append(value.string_value)
        people = _participant_ids(raw)
    return BoardEdit(
        board_id=parse_uuid(request.board_id, field="boardId"),
        project_id=parse_uuid(request.project_id, field="projectId") if request.project_id.strip() else None,
        title=clean_title(request.title) if request.HasField("title") else None,
        content=clean_content(request.content) if request.HasField("content") else None,
        custom_fields=custom_fields,
        # Unset (or empty) leaves the assignee as it is.
        assignee=(
            parse_uuid(request.assignee_id, field="assigneeId")
            if request.HasField("assignee_id") and request.assignee_id.strip()
            else None
        ),
        participants=people,
        start_date=optional_datetime(request, "start_date"),
        due_date=optional_datetime(request, "due_date"),
        attachment_ids=attachment_ids(request.attachment_ids),
    )


async def replace_participants(
    session: AsyncSession, board_id: uuid.UUID, current: Sequence[uuid.UUID], wanted: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """Make the board's participants ``wanted``, keeping the rows (and the order) of those who stay."""
    removed = [person for person in current if person not in wanted]
    if removed:
        await session.exec(
            sql_delete(Participant).where(
                col(Participant.board_id) == board_id, col(Participant.user_id).in_(removed)
            )
        )
    added = [person for person in wanted if person not in current]
    for person in added:
        session.add(Participant(board_id=board_id, user_id=person))
    return [person for person in current if person not in removed] + added


class BoardServicer(board_pb2_grpc.BoardServiceServicer):
    """Boards of the projects of the caller's workspaces."""

    def __init__(self, ctx: BoardContext, notifier: Notifier) -> None:
        self.ctx = ctx
        self.notifier = notifier

    async def ListBoards(
        self, request: board_pb2.ListBoardsRequest, context: Context
    ) -> board_pb2.ListBoardsResponse:
        """A project's boards, oldest first, optionally filtered by custom field values."""
        user = caller_id()
        if not request.project_id.strip():
            raise InvalidField("projectId", "Project ID is required")
        project_id = parse_uuid(request.project_id, field="projectId")
        wanted = fields.parse_filter(request.custom_fields)
        async with self.ctx.database.unit_of_work() as session:
            found, options = await _project_and_options(session, project_id)
            workspace_id = await require_member(self.ctx.directory, found, user)
            contains = None
            if wanted:
                contains = fields.filter_ids(options, wanted)
                if contains is None:
                    return board_pb2.ListBoardsResponse()
            return await list_boards(
                session,
                self.ctx.store,
                project_id=project_id,
                workspace_id=workspace_id,
                options=options,
                contains=contains,
            )

    async def CreateBoard(
        self, request: board_pb2.CreateBoardRequest, context: Context
    ) -> board_pb2.CreateBoardResponse:
        """Create a board with its participants and attachments in one transaction; then BOARD_CREATED."""
        user = caller_id()
        if not request.project_id.strip():
            raise InvalidField("projectId", "Project ID is required")
        project_id = parse_uuid(request.project_id, field="projectId")
        title = clean_title(request.title)
        content = clean_content(request.content)
        start, due = optional_datetime(request, "start_date"), optional_datetime(request, "due_date")
        check_dates(start, due)
        assignee: uuid.UUID | None = user
        if request.HasField("assignee_id") and request.assignee_id.strip():
            chosen = parse_uuid(request.assignee_id, field="assigneeId")
            # The nil UUID asks for no assignee, as it does on update.
            assignee = chosen if chosen.int != 0 else None
        people = _participant_ids(request.participants)
        files = attachment_ids(request.attachment_ids)
        async with self.ctx.database.unit_of_work() as session:
            seen = await see_project(session, self.ctx.directory, project_id, user)
            require_project_member(seen)
            project = seen.project
            await check_members(
                self.ctx.directory,
                project.workspace_id,
                assignee=assignee if assignee != user else None,
                participants=people,
            )
            options = await fields.project_options(session, project_id)
            board = Board(
                project_id=project_id,
                author_id=user,
                assignee_id=assignee,
                title=title,
                content=content,
                custom_fields=options.to_ids(dict(request.custom_fields)),
                start_date=start,
                due_date=due,
            )
            session.add(board)
            await session.flush()
            for person in people:
                session.add(Participant(board_id=board.id, user_id=person))
            await session.flush()
            await attachments.confirm(
                session,
                ids=files,
                entity_type=ENTITY_BOARD,
                entity_id=board.id,
                project=project,
                user_id=user,
                store=self.ctx.store,
            )
            self.notifier.enqueue(
                session,
                event_type=BOARD_ASSIGNED,
                actor_id=user,
                targets=[assignee],
                board=board,
                project=project,
            )
            self.notifier.enqueue(
                session,
                event_type=BOARD_PARTICIPANT_ADDED,
                actor_id=user,
                targets=people,
                board=board,
                project=project,
            )
            (message,) = await board_messages(session, self.ctx, project, options, [board])
        self.notifier.poke()
        await announce(self.ctx, project_id, events.BOARD_CREATED, board_json(message), board.id)
        return board_pb2.CreateBoardResponse(board=message)

    async def GetBoard(
        self, request: board_pb2.GetBoardRequest, context: Context
    ) -> board_pb2.GetBoardResponse:
        """One board with its participants, comments (with their files) and files."""
        user = caller_id()
        board_id = parse_uuid(request.board_id, field="boardId")
        async with self.ctx.database.unit_of_work() as session:
            board, seen = await see_board(session, self.ctx.directory, board_id, user)
            options = await fields.project_options(session, board.project_id)
            people = await participant_rows(session, [board.id])
            comments = list(
                (
                    await session.exec(
                        select(Comment)
                        .where(col(Comment.board_id) == board.id)
                        .order_by(col(Comment.created_at), col(Comment.id))
                    )
                ).all()
            )
            board_files = await attachment_api.inline(session, self.ctx.store, ENTITY_BOARD, [board.id])
            comment_files = (
                await attachment_api.inline(session, self.ctx.store, ENTITY_COMMENT, [c.id for c in comments])
                if comments
                else {}
            )
        card = board_message(
            board, seen.project, options, [p.user_id for p in people], board_files.get(board.id, [])
        )
        detail = board_pb2.BoardDetail(
            participants=[participant_message(p) for p in people],
            comments=[comment_message(c, comment_files.get(c.id, [])) for c in comments],
        )
        # BoardDetail repeats Board's fields with the same numbers: copy them over by wire format.
        detail.MergeFromString(card.SerializeToString())
        return board_pb2.GetBoardResponse(board=detail)

    async def UpdateBoard(
        self, request: board_pb2.UpdateBoardRequest, context: Context
    ) -> board_pb2.UpdateBoardResponse:
        """Change the fields that are set; then BOARD_UPDATED to the sockets and the people of the board."""
        user = caller_id()
        edit = parse_edit(request)
        async with self.ctx.database.unit_of_work() as session:
            board, seen = await see_board(session, self.ctx.directory, edit.board_id, user, lock=True)
            require_board_editor(seen, board, user)
            project = seen.project
            if edit.project_id is not None and edit.project_id != board.project_id:
                raise InvalidField("projectId", "must be the board's project")
            before = _snapshot(board)
            options = await fields.project_options(session, board.project_id)
            edit.apply(board, options)
            current = (await participants_of(session, [board.id]))[board.id]
            added = (
                [p for p in edit.participants if p not in current] if edit.participants is not None else []
            )
            target = board.assignee_id
            if edit.assignee is not None:
                # The nil UUID unassigns.
                target = edit.assignee if edit.assignee.int != 0 else None
            await check_members(
                self.ctx.directory,
                project.workspace_id,
                assignee=target if target != before.assignee_id else None,
                participants=added,
            )
            board.assignee_id = target
            if edit.participants is not None:
                current = await replace_participants(session, board.id, current, edit.participants)
            board.updated_at = datetime.now(UTC)
            session.add(board)
            await session.flush()
            await attachments.confirm(
                session,
                ids=edit.attachment_ids,
                entity_type=ENTITY_BOARD,
                entity_id=board.id,
                project=project,
                user_id=user,
                store=self.ctx.store,
            )
            if board.assignee_id != before.assignee_id:
                self.notifier.enqueue(
                    session,
                    event_type=BOARD_ASSIGNED,
                    actor_id=user,
                    targets=[board.assignee_id],
                    board=board,
                    project=project,
                )
            self.notifier.enqueue(
                session,
                event_type=BOARD_PARTICIPANT_ADDED,
                actor_id=user,
                targets=added,
                board=board,
                project=project,
            )
            changes = _changes(before, board, options)
            if changes:
                # The previous assignee hears about it too (being unassigned is news to them).
                self.notifier.enqueue(
                    session,
                    event_type=BOARD_UPDATED,
                    actor_id=user,
                    targets=[before.assignee_id, board.assignee_id, *current],
                    board=board,
                    project=project,
                    metadata={"changes": changes},
                )
            (message,) = await board_messages(session, self.ctx, project, options, [board])
        self.notifier.poke()
        await announce(self.ctx, board.project_id, events.BOARD_UPDATED, board_json(message), board.id)
        return board_pb2.UpdateBoardResponse(board=message)

    async def DeleteBoard(
        self, request: board_pb2.DeleteBoardRequest, context: Context
    ) -> board_pb2.DeleteBoardResponse:
        """Delete a board with its participants, comments and files; then BOARD_DELETED."""
        user = caller_id()
        board_id = parse_uuid(request.board_id, field="boardId")
        async with self.ctx.database.unit_of_work() as session:
            board, seen = await see_board(session, self.ctx.directory, board_id, user, lock=True)
            require_board_deleter(seen, board, user)
            # Files are handed to the clean-up first, so a failed purge below still gets them removed.
            released = await attachments.release(session, board_ids=[board.id])
            await session.exec(sql_delete(Board).where(col(Board.id) == board.id))
        await attachment_api.purge(self.ctx, released)
        await announce(self.ctx, board.project_id, events.BOARD_DELETED, {"boardId": str(board.id)}, board.id)
        return board_pb2.DeleteBoardResponse()

    async def MoveBoard(
        self, request: board_pb2.MoveBoardRequest, context: Context
    ) -> board_pb2.MoveBoardResponse:
        """Set one custom field (a drag to another column); then BOARD_MOVED."""
        user = caller_id()
        board_id = parse_uuid(request.board_id, field="boardId")
        if not request.project_id.strip():
            raise InvalidField("projectId", "Project ID is required")
        project_id = parse_uuid(request.project_id, field="projectId")
        field = request.group_by_field_name.strip()
        if field not in FIELD_TYPES:
            raise InvalidField("groupByFieldName", f"must be one of {', '.join(FIELD_TYPES)}")
        value = request.new_field_value
        async with self.ctx.database.unit_of_work() as session:
            board, seen = await see_board(session, self.ctx.directory, board_id, user, lock=True)
            require_board_editor(seen, board, user)
            if board.project_id != project_id:
                raise InvalidField("projectId", "must be the board's project")
            options = await fields.project_options(session, board.project_id)
            stored = dict(board.custom_fields or {})
            old_id = stored.get(field)
            if value:
                stored[field] = options.option_id(field, value, name="newFieldValue")
            else:
                stored.pop(field, None)
            new_id = stored.get(field)
            if new_id != old_id:
                board.custom_fields = stored
                board.updated_at = datetime.now(UTC)
                session.add(board)
                people = (await participants_of(session, [board.id]))[board.id]
                self.notifier.enqueue(
                    session,
                    event_type=BOARD_UPDATED,
                    actor_id=user,
                    targets=[board.assignee_id, *people],
                    board=board,
                    project=seen.project,
                    metadata={
                        "changes": [
                            {
                                "field": field,
                                "oldValue": options.label(old_id),
                                "newValue": options.label(new_id),
                            }
                        ]
                    },
                )
            moved = {"from": options.value(old_id) if old_id else "", "to": value, "field": field}
        self.notifier.poke()
        await announce(self.ctx, board.project_id, events.BOARD_MOVED, moved, board.id)
        return board_pb2.MoveBoardResponse(board_id=str(board.id), new_field_value=value, message=MOVED)
