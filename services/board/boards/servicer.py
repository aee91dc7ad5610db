"""Boards over gRPC: protobuf ↔ :mod:`services.board.boards.service`; no SQL here.

Every method runs in one unit of work; events to the project's sockets are published and the outbox's
notifications poked only after the commit, and files of a deleted board are purged from S3 after it. The
Board in a response, in a list and in an event payload are the same JSON (:func:`board_json`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from sqlmodel.ext.asyncio.session import AsyncSession
from typing_extensions import override
from wealist.board.v1 import board_pb2, board_pb2_grpc, common_pb2

from mesh import Context, InvalidField, caller_id, optional_datetime, parse_uuid, timestamp
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
from services.board.boards import service
from services.board.boards.service import BoardEdit, attachment_ids, participants_of
from services.board.context import BoardContext
from services.board.models import ENTITY_BOARD, Board, Comment, Participant, Project
from services.board.notify import BOARD_ASSIGNED, BOARD_PARTICIPANT_ADDED, BOARD_UPDATED, Notifier

log = logging.getLogger(__name__)

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


async def board_messages(
    session: AsyncSession,
    ctx: BoardContext,
    project: Project,
    options: fields.ProjectOptions,
    boards: Sequence[Board],
) -> list[board_pb2.Board]:
    """Boards of one project as messages: one query for participants, one for attachments."""
    ids = [board.id for board in boards]
    people = await participants_of(session, board_ids=ids)
    files = await attachment_api.inline(session, ctx.store, ENTITY_BOARD, ids) if ids else {}
    return [
        board_message(board, project, options, people[board.id], files.get(board.id, [])) for board in boards
    ]


def _stamp(micros: int | None) -> dict[str, int] | None:
    """A Timestamp's fields from microseconds since the epoch (what ``Timestamp.FromDatetime`` gives)."""
    if micros is None:
        return None
    seconds, fraction = divmod(micros, 1_000_000)
    return {"seconds": seconds, "nanos": fraction * 1000}


def listing_response(
    listing: service.Listing,
    ctx: BoardContext,
    *,
    project_id: uuid.UUID,
    workspace_id: uuid.UUID,
    options: fields.ProjectOptions,
) -> board_pb2.ListBoardsResponse:
    """The listing's response, built straight from its plain rows (the JSON :func:`board_message` gives)."""
    files = {
        board: [attachment_api.inline_message(file, ctx.store) for file in found]
        for board, found in listing.files.items()
    }
    response = board_pb2.ListBoardsResponse()
    add = response.boards.add
    project, workspace = str(project_id), str(workspace_id)
    write_values = options.write_values
    for row in listing.boards:
        board = add(
            board_id=row.board_id,
            project_id=project,
            workspace_id=workspace,
            author_id=row.author_id,
            assignee_id=row.assignee_id,
            title=row.title,
            content=row.content,
            start_date=_stamp(row.start_date),
            due_date=_stamp(row.due_date),
            participant_ids=row.participant_ids,
            attachments=files[uuid.UUID(row.board_id)] if row.has_files else (),
            created_at=_stamp(row.created_at),
            updated_at=_stamp(row.updated_at),
        )
        write_values(board.custom_fields, row.option_ids)
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
        people = service.participant_ids(raw)
    return BoardEdit(
        board_id=parse_uuid(request.board_id, field="boardId"),
        project_id=parse_uuid(request.project_id, field="projectId") if request.project_id.strip() else None,
        title=service.clean_title(request.title) if request.HasField("title") else None,
        content=service.clean_content(request.content) if request.HasField("content") else None,
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


class BoardServicer(board_pb2_grpc.BoardServiceServicer):
    """Boards of the projects of the caller's workspaces."""

    def __init__(self, ctx: BoardContext, notifier: Notifier) -> None:
        self.ctx = ctx
        self.notifier = notifier

    @override
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
            found, options = await service.project_and_options(session, project_id=project_id)
            workspace_id = await require_member(self.ctx.directory, found, user)
            contains = None
            if wanted:
                contains = fields.filter_ids(options, wanted)
                if contains is None:
                    return board_pb2.ListBoardsResponse()
            listing = await service.list_boards(session, project_id=project_id, contains=contains)
        return listing_response(
            listing, self.ctx, project_id=project_id, workspace_id=workspace_id, options=options
        )

    @override
    async def CreateBoard(
        self, request: board_pb2.CreateBoardRequest, context: Context
    ) -> board_pb2.CreateBoardResponse:
        """Create a board with its participants and attachments in one transaction; then BOARD_CREATED."""
        user = caller_id()
        if not request.project_id.strip():
            raise InvalidField("projectId", "Project ID is required")
        project_id = parse_uuid(request.project_id, field="projectId")
        title = service.clean_title(request.title)
        content = service.clean_content(request.content)
        start, due = optional_datetime(request, "start_date"), optional_datetime(request, "due_date")
        check_dates(start, due)
        assignee: uuid.UUID | None = user
        if request.HasField("assignee_id") and request.assignee_id.strip():
            chosen = parse_uuid(request.assignee_id, field="assigneeId")
            # The nil UUID asks for no assignee, as it does on update.
            assignee = chosen if chosen.int != 0 else None
        people = service.participant_ids(request.participants)
        files = attachment_ids(request.attachment_ids)
        async with self.ctx.database.unit_of_work() as session:
            seen = await see_project(session, self.ctx.directory, project_id, user)
            require_project_member(seen)
            project = seen.project
            await service.check_members(
                self.ctx.directory,
                project.workspace_id,
                assignee=assignee if assignee != user else None,
                participants=people,
            )
            board, options = await service.create_board(
                session,
                project=project,
                author_id=user,
                assignee_id=assignee,
                title=title,
                content=content,
                custom_fields=dict(request.custom_fields),
                start_date=start,
                due_date=due,
                participants=people,
                attachment_ids=files,
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

    @override
    async def GetBoard(
        self, request: board_pb2.GetBoardRequest, context: Context
    ) -> board_pb2.GetBoardResponse:
        """One board with its participants, comments (with their files) and files."""
        user = caller_id()
        board_id = parse_uuid(request.board_id, field="boardId")
        async with self.ctx.database.unit_of_work() as session:
            board, seen = await see_board(session, self.ctx.directory, board_id, user)
            found = await service.board_detail(session, board=board)
        store = self.ctx.store

        def inline(files: Sequence[attachments.InlineFile]) -> list[common_pb2.AttachmentInline]:
            return [attachment_api.inline_message(file, store) for file in files]

        card = board_message(
            board, seen.project, found.options, [p.user_id for p in found.participants], inline(found.files)
        )
        detail = board_pb2.BoardDetail(
            participants=[participant_message(p) for p in found.participants],
            comments=[comment_message(c, inline(found.comment_files.get(c.id, []))) for c in found.comments],
        )
        # BoardDetail repeats Board's fields with the same numbers: copy them over by wire format.
        detail.MergeFromString(card.SerializeToString())
        return board_pb2.GetBoardResponse(board=detail)

    @override
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
            update = await service.update_board(
                session,
                board=board,
                project=project,
                edit=edit,
                user_id=user,
                directory=self.ctx.directory,
                store=self.ctx.store,
            )
            before = update.before
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
                targets=update.added,
                board=board,
                project=project,
            )
            if update.changes:
                # The previous assignee hears about it too (being unassigned is news to them).
                self.notifier.enqueue(
                    session,
                    event_type=BOARD_UPDATED,
                    actor_id=user,
                    targets=[before.assignee_id, board.assignee_id, *update.participants],
                    board=board,
                    project=project,
                    metadata={"changes": update.changes},
                )
            (message,) = await board_messages(session, self.ctx, project, update.options, [board])
        self.notifier.poke()
        await announce(self.ctx, board.project_id, events.BOARD_UPDATED, board_json(message), board.id)
        return board_pb2.UpdateBoardResponse(board=message)

    @override
    async def DeleteBoard(
        self, request: board_pb2.DeleteBoardRequest, context: Context
    ) -> board_pb2.DeleteBoardResponse:
        """Delete a board with its participants, comments and files; then BOARD_DELETED."""
        user = caller_id()
        board_id = parse_uuid(request.board_id, field="boardId")
        async with self.ctx.database.unit_of_work() as session:
            board, seen = await see_board(session, self.ctx.directory, board_id, user, lock=True)
            require_board_deleter(seen, board, user)
            released = await service.delete_board(session, board=board)
        await attachment_api.purge(self.ctx, released)
        await announce(self.ctx, board.project_id, events.BOARD_DELETED, {"boardId": str(board.id)}, board.id)
        return board_pb2.DeleteBoardResponse()

    @override
    async def MoveBoard(
        self, request: board_pb2.MoveBoardRequest, context: Context
    ) -> board_pb2.MoveBoardResponse:
        """Set one custom field (a drag to another column); then BOARD_MOVED."""
        user = caller_id()
        board_id = parse_uuid(request.board_id, field="boardId")
        if not request.project_id.strip():
            raise InvalidField("projectId", "Project ID is required")
        project_id = parse_uuid(request.project_id, field="projectId")
        field = service.check_field(request.group_by_field_name)
        value = request.new_field_value
        async with self.ctx.database.unit_of_work() as session:
            board, seen = await see_board(session, self.ctx.directory, board_id, user, lock=True)
            require_board_editor(seen, board, user)
            move = await service.move_board(
                session, board=board, project_id=project_id, field=field, value=value
            )
            options = move.options
            if move.participants is not None:
                self.notifier.enqueue(
                    session,
                    event_type=BOARD_UPDATED,
                    actor_id=user,
                    targets=[board.assignee_id, *move.participants],
                    board=board,
                    project=seen.project,
                    metadata={
                        "changes": [
                            {
                                "field": field,
                                "oldValue": options.label(move.old_id),
                                "newValue": options.label(move.new_id),
                            }
                        ]
                    },
                )
            moved = {"from": options.value(move.old_id) if move.old_id else "", "to": value, "field": field}
        self.notifier.poke()
        await announce(self.ctx, board.project_id, events.BOARD_MOVED, moved, board.id)
        return board_pb2.MoveBoardResponse(board_id=str(board.id), new_field_value=value, message=MOVED)
