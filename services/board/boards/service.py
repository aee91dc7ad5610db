"""The kanban's boards: list, create, read, update, delete, move; no protobuf.

Who may do which is :mod:`access`'s rule: project members create boards; project members and a board's
author and assignee change it; its author, assignee or a project OWNER/ADMIN delete it. The servicer
checks who the caller is and sees the board or project (:mod:`access`), then calls these functions in its
unit of work; notifications and socket events are the servicer's (after the commit). A board's custom
fields are stored as option ids and spoken as option values (:mod:`fields`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

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

from mesh import InvalidField, ObjectStore, parse_uuids
from services.board import fields
from services.board.access import check_dates
from services.board.attachments import service as attachments
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

MAX_TITLE = 200
MAX_CONTENT = 5000
MAX_PARTICIPANTS = 50
NOT_A_MEMBER = "must be a member of the workspace"
# What a BOARD_UPDATED notification shows for a content change (the contract's text; the content itself
# may be 5000 characters and is not repeated in the notification).
CONTENT_CHANGED = "(내용 변경)"


class Roles(Protocol):
    """Workspace roles of several users: :class:`services.board.directory.Directory` answers it.

    Named by what the member check needs, so this layer does not import the directory's gRPC client.
    """

    async def roles(
        self, workspace_id: uuid.UUID, user_ids: Iterable[uuid.UUID]
    ) -> Mapping[uuid.UUID, str | None]:
        """Each user's role in the workspace, or ``None`` for a non-member."""
        ...


async def participant_rows(session: AsyncSession, *, board_ids: Sequence[uuid.UUID]) -> list[Participant]:
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
    session: AsyncSession, *, board_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Participant user ids per board, in the order they were added (one query)."""
    found: dict[uuid.UUID, list[uuid.UUID]] = {board_id: [] for board_id in board_ids}
    for row in await participant_rows(session, board_ids=board_ids):
        found[row.board_id].append(row.user_id)
    return found


# --- the listing ------------------------------------------------------------------------------------------
# ListBoards is the kanban's hot read (every board of a project, on every screen load and reconnect), so it
# reads plain rows with Core selects instead of ORM objects, and the servicer builds the messages from them:
# ids come back as text (no UUID objects to make and print again), timestamps as microseconds since the
# epoch, each board's participants as an array in the same query, and attachments are fetched only for the
# boards that have some. The JSON is the same as the servicer's ``board_message`` gives
# (tests/board/test_board_list.py).

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


async def project_and_options(
    session: AsyncSession, *, project_id: uuid.UUID
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
# Where a listing row's option ids start: after the columns ListedBoard names one by one.
_OPTIONS_AT = 11
# What an unfiltered listing of a project without files runs (bench/board_list.py measures it on Postgres).
LISTING_STATEMENTS: tuple[Select[Any], ...] = (_PROJECT_AND_OPTIONS, _LISTING)


class ListedBoard(NamedTuple):
    """One board of a listing as the query gives it: ids as text, times as microseconds since the epoch."""

    board_id: str
    author_id: str
    assignee_id: str | None
    title: str
    content: str
    start_date: int | None
    due_date: int | None
    created_at: int
    updated_at: int
    participant_ids: list[str]
    has_files: bool
    # The stored option id of each custom field, in FIELD_TYPES' order (None for a field it has none of).
    option_ids: tuple[str | None, ...]


@dataclass(frozen=True, slots=True)
class Listing:
    """A project's boards, oldest first, and the files of those that have some."""

    boards: list[ListedBoard]
    files: dict[uuid.UUID, list[attachments.InlineFile]]


async def list_boards(
    session: AsyncSession, *, project_id: uuid.UUID, contains: dict[str, str] | None
) -> Listing:
    """One query for the boards and their participants, one for the files of those that have some."""
    connection = await session.connection()
    if contains:
        result = await connection.execute(_LISTING_FILTERED, {"project_id": project_id, "contains": contains})
    else:
        result = await connection.execute(_LISTING, {"project_id": project_id})
    width = _OPTIONS_AT
    boards = [ListedBoard._make((*row[:width], tuple(row[width:]))) for row in result.all()]
    with_files = [uuid.UUID(board.board_id) for board in boards if board.has_files]
    files = (
        await attachments.inline_files(session, entity_type=ENTITY_BOARD, entity_ids=with_files)
        if with_files
        else {}
    )
    return Listing(boards=boards, files=files)


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


def participant_ids(values: Sequence[str]) -> list[uuid.UUID]:
    people = parse_uuids(values, field="participants")
    if len(people) > MAX_PARTICIPANTS:
        raise InvalidField("participants", f"at most {MAX_PARTICIPANTS} participants")
    return people


def attachment_ids(values: Sequence[str]) -> list[uuid.UUID]:
    """Attachment ids of a request, duplicates and nil UUIDs dropped (the web client sends nil ones)."""
    return [value for value in parse_uuids(values, field="attachmentIds") if value.int != 0]


async def check_members(
    directory: Roles,
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


def changes(before: Board, after: Board, options: fields.ProjectOptions) -> list[dict[str, str]]:
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


def snapshot(board: Board) -> Board:
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


async def replace_participants(
    session: AsyncSession, *, board_id: uuid.UUID, current: Sequence[uuid.UUID], wanted: Sequence[uuid.UUID]
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


# --- the writes and the detail ----------------------------------------------------------------------------


async def create_board(
    session: AsyncSession,
    *,
    project: Project,
    author_id: uuid.UUID,
    assignee_id: uuid.UUID | None,
    title: str,
    content: str,
    custom_fields: Mapping[str, str],
    start_date: datetime | None,
    due_date: datetime | None,
    participants: Sequence[uuid.UUID],
    attachment_ids: Sequence[uuid.UUID],
    store: ObjectStore,
) -> tuple[Board, fields.ProjectOptions]:
    """Insert the board with its participants and confirm its files; the project's options with it."""
    options = await fields.project_options(session, project.id)
    board = Board(
        project_id=project.id,
        author_id=author_id,
        assignee_id=assignee_id,
        title=title,
        content=content,
        custom_fields=options.to_ids(dict(custom_fields)),
        start_date=start_date,
        due_date=due_date,
    )
    session.add(board)
    await session.flush()
    for person in participants:
        session.add(Participant(board_id=board.id, user_id=person))
    await session.flush()
    await attachments.confirm(
        session,
        ids=attachment_ids,
        entity_type=ENTITY_BOARD,
        entity_id=board.id,
        project=project,
        user_id=author_id,
        store=store,
    )
    return board, options


@dataclass(frozen=True, slots=True)
class BoardDetail:
    """What GetBoard shows besides the board's own columns."""

    options: fields.ProjectOptions
    participants: list[Participant]
    comments: list[Comment]
    files: list[attachments.InlineFile]
    comment_files: dict[uuid.UUID, list[attachments.InlineFile]]


async def board_detail(session: AsyncSession, *, board: Board) -> BoardDetail:
    """The board's options, participants, comments (oldest first) and the files of both."""
    options = await fields.project_options(session, board.project_id)
    people = await participant_rows(session, board_ids=[board.id])
    comments = list(
        (
            await session.exec(
                select(Comment)
                .where(col(Comment.board_id) == board.id)
                .order_by(col(Comment.created_at), col(Comment.id))
            )
        ).all()
    )
    board_files = await attachments.inline_files(session, entity_type=ENTITY_BOARD, entity_ids=[board.id])
    comment_files = (
        await attachments.inline_files(
            session, entity_type=ENTITY_COMMENT, entity_ids=[c.id for c in comments]
        )
        if comments
        else {}
    )
    return BoardDetail(
        options=options,
        participants=people,
        comments=comments,
        files=board_files.get(board.id, []),
        comment_files=comment_files,
    )


@dataclass(frozen=True, slots=True)
class BoardUpdate:
    """What an update changed, for the servicer's notifications and response."""

    before: Board
    options: fields.ProjectOptions
    # Participants newly added, and the board's participants after the update.
    added: list[uuid.UUID]
    participants: list[uuid.UUID]
    changes: list[dict[str, str]]


async def update_board(
    session: AsyncSession,
    *,
    board: Board,
    project: Project,
    edit: BoardEdit,
    user_id: uuid.UUID,
    directory: Roles,
    store: ObjectStore,
) -> BoardUpdate:
    """Apply an edit to a board the caller may change (locked by the caller) and confirm its files."""
    if edit.project_id is not None and edit.project_id != board.project_id:
        raise InvalidField("projectId", "must be the board's project")
    before = snapshot(board)
    options = await fields.project_options(session, board.project_id)
    edit.apply(board, options)
    current = (await participants_of(session, board_ids=[board.id]))[board.id]
    added = [p for p in edit.participants if p not in current] if edit.participants is not None else []
    target = board.assignee_id
    if edit.assignee is not None:
        # The nil UUID unassigns.
        target = edit.assignee if edit.assignee.int != 0 else None
    await check_members(
        directory,
        project.workspace_id,
        assignee=target if target != before.assignee_id else None,
        participants=added,
    )
    board.assignee_id = target
    if edit.participants is not None:
        current = await replace_participants(
            session, board_id=board.id, current=current, wanted=edit.participants
        )
    board.updated_at = datetime.now(UTC)
    session.add(board)
    await session.flush()
    await attachments.confirm(
        session,
        ids=edit.attachment_ids,
        entity_type=ENTITY_BOARD,
        entity_id=board.id,
        project=project,
        user_id=user_id,
        store=store,
    )
    return BoardUpdate(
        before=before,
        options=options,
        added=added,
        participants=current,
        changes=changes(before, board, options),
    )


async def delete_board(session: AsyncSession, *, board: Board) -> list[uuid.UUID]:
    """Delete the board (participants and comments go by cascade); the ids of its files to purge."""
    # Files are handed to the clean-up first, so a failed purge after the commit still gets them removed.
    released = await attachments.release(session, board_ids=[board.id])
    await session.exec(sql_delete(Board).where(col(Board.id) == board.id))
    return released


@dataclass(frozen=True, slots=True)
class BoardMove:
    """A move's outcome: the option ids before and after; participants only when the field changed."""

    options: fields.ProjectOptions
    old_id: str | None
    new_id: str | None
    participants: list[uuid.UUID] | None


def check_field(value: str) -> str:
    """The custom field a move sets: one of FIELD_TYPES."""
    field = value.strip()
    if field not in FIELD_TYPES:
        raise InvalidField("groupByFieldName", f"must be one of {', '.join(FIELD_TYPES)}")
    return field


async def move_board(
    session: AsyncSession, *, board: Board, project_id: uuid.UUID, field: str, value: str
) -> BoardMove:
    """Set one custom field of a board the caller may change (locked by the caller); "" clears it."""
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
    people = None
    if new_id != old_id:
        board.custom_fields = stored
        board.updated_at = datetime.now(UTC)
        session.add(board)
        people = (await participants_of(session, board_ids=[board.id]))[board.id]
    return BoardMove(options=options, old_id=old_id, new_id=new_id, participants=people)
