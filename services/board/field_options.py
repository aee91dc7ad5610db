"""The options of a project's custom fields (stage, importance, role): the kanban's columns and tags.

Options belong to one project. Every member of the project's workspace reads them; the project's OWNER
and ADMINs create, change, reorder and delete them. Boards hold an option by its id
(``boards.custom_fields = {"stage": "<option id>"}``), so changing a label, a colour or the order never
touches a board, and deleting an option removes that key from the boards holding it, in the same
transaction.

The web client's custom-field dialog creates options without a project id; the project is then the one
whose init-settings the caller loaded last (:func:`services.board.projects.service.current_project`).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from typing_extensions import override
from wealist.board.v1 import field_option_pb2, field_option_pb2_grpc

from mesh import Context, InvalidField, NotFound, caller_id, parse_uuid, timestamp
from services.board.access import Seen, require_manager, see_project
from services.board.context import BoardContext
from services.board.models import FIELD_TYPES, FieldOption
from services.board.projects.service import current_project

VALUE_MAX = 100
LABEL_MAX = 200
# #RGB, #RGBA, #RRGGBB or #RRGGBBAA.
COLOR = re.compile(r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
MANAGERS_ONLY = "Only project owner or admin can manage field options"
NOT_FOUND = "Field option not found"


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------------
# Validation


def _field_type(value: str) -> str:
    field_type = value.strip().lower()
    if not field_type:
        raise InvalidField("fieldType", "is required")
    if field_type not in FIELD_TYPES:
        raise InvalidField("fieldType", f"must be one of: {', '.join(FIELD_TYPES)}")
    return field_type


def _value(value: str) -> str:
    stripped = value.strip()
    if not 1 <= len(stripped) <= VALUE_MAX:
        raise InvalidField("value", f"must be 1-{VALUE_MAX} characters")
    return stripped


def _label(value: str) -> str:
    stripped = value.strip()
    if not 1 <= len(stripped) <= LABEL_MAX:
        raise InvalidField("label", f"must be 1-{LABEL_MAX} characters")
    return stripped


def _color(value: str) -> str:
    stripped = value.strip()
    if COLOR.fullmatch(stripped) is None:
        raise InvalidField("color", "must be a hex colour: #RGB, #RGBA, #RRGGBB or #RRGGBBAA")
    return stripped


def _display_order(value: int) -> int:
    if value < 0:
        raise InvalidField("displayOrder", "must not be negative")
    return value


def _duplicate(value: str, field_type: str) -> InvalidField:
    return InvalidField(
        "value", f"Field option with value '{value}' already exists for field type '{field_type}'"
    )


# --------------------------------------------------------------------------------------------------
# Domain functions: keyword-only, session first, no protobuf.


async def list_options(session: AsyncSession, *, project_id: uuid.UUID, field_type: str) -> list[FieldOption]:
    """The project's options of one field, in display order."""
    rows = await session.exec(
        select(FieldOption)
        .where(col(FieldOption.project_id) == project_id, col(FieldOption.field_type) == field_type)
        .order_by(col(FieldOption.display_order), col(FieldOption.created_at), col(FieldOption.value))
    )
    return list(rows)


async def create_option(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    field_type: str,
    value: str,
    label: str,
    color: str,
    display_order: int | None,
) -> FieldOption:
    """A new option of the field; its value is unique within the project's field."""
    taken = await session.scalar(
        select(col(FieldOption.id)).where(
            col(FieldOption.project_id) == project_id,
            col(FieldOption.field_type) == field_type,
            col(FieldOption.value) == value,
        )
    )
    if taken is not None:
        raise _duplicate(value, field_type)
    if display_order is None:
        last = await session.scalar(
            select(func.max(col(FieldOption.display_order))).where(
                col(FieldOption.project_id) == project_id, col(FieldOption.field_type) == field_type
            )
        )
        display_order = (last or 0) + 1
    now = _now()
    option = FieldOption(
        project_id=project_id,
        field_type=field_type,
        value=value,
        label=label,
        color=color,
        display_order=display_order,
        created_at=now,
        updated_at=now,
    )
    session.add(option)
    try:
        await session.flush()
    except IntegrityError:
        # A concurrent create of the same value won the unique constraint.
        raise _duplicate(value, field_type) from None
    return option


async def delete_option(session: AsyncSession, *, option: FieldOption) -> int:
    """Delete the option and take it off the boards holding it; how many boards lost it."""
    # The field name comes from FIELD_TYPES (validated on create), never from the request.
    cleared = await session.execute(
        text(
            "UPDATE boards SET custom_fields = custom_fields - CAST(:field AS text), updated_at = now() "
            "WHERE project_id = :project AND custom_fields ->> CAST(:field AS text) = :option"
        ),
        {"field": option.field_type, "project": option.project_id, "option": str(option.id)},
    )
    await session.execute(sql_delete(FieldOption).where(col(FieldOption.id) == option.id))
    return int(getattr(cleared, "rowcount", 0) or 0)


async def reorder_options(
    session: AsyncSession, *, project_id: uuid.UUID, field_type: str, option_ids: list[uuid.UUID]
) -> list[FieldOption]:
    """Put the field's options in the given order (display order 1..n); every option exactly once."""
    rows = await session.exec(
        select(FieldOption)
        .where(col(FieldOption.project_id) == project_id, col(FieldOption.field_type) == field_type)
        .with_for_update()
    )
    options = {option.id: option for option in rows}
    if len(option_ids) != len(options) or set(option_ids) != set(options):
        raise InvalidField("optionIds", f"must list every option of the field '{field_type}' exactly once")
    now = _now()
    ordered = []
    for order, option_id in enumerate(option_ids, start=1):
        option = options[option_id]
        if option.display_order != order:
            option.display_order = order
            option.updated_at = now
            session.add(option)
        ordered.append(option)
    await session.flush()
    return ordered


# --------------------------------------------------------------------------------------------------
# Protobuf


def option_message(option: FieldOption) -> field_option_pb2.FieldOption:
    """The contract's FieldOption."""
    return field_option_pb2.FieldOption(
        option_id=str(option.id),
        project_id=str(option.project_id),
        field_type=option.field_type,
        value=option.value,
        label=option.label,
        color=option.color,
        display_order=option.display_order,
        is_system_default=option.is_system_default,
        created_at=timestamp(option.created_at),
        updated_at=timestamp(option.updated_at),
    )


class FieldOptionServicer(field_option_pb2_grpc.FieldOptionServiceServicer):
    """The field option API the gateway exposes."""

    def __init__(self, ctx: BoardContext) -> None:
        self.ctx = ctx

    async def _project_id(self, value: str, user_id: uuid.UUID) -> uuid.UUID:
        """The request's projectId, else the caller's current project; 400 naming projectId if neither."""
        if value.strip():
            return parse_uuid(value, field="projectId")
        remembered = await current_project(self.ctx.redis, user_id)
        if remembered is None:
            raise InvalidField("projectId", "is required (no project was opened recently)")
        return remembered

    async def _option(
        self, session: AsyncSession, option_id: uuid.UUID, user_id: uuid.UUID
    ) -> tuple[FieldOption, Seen]:
        """The option, locked, and its project as the caller sees it; NOT_FOUND for other workspaces."""
        option = await session.scalar(
            select(FieldOption).where(col(FieldOption.id) == option_id).with_for_update()
        )
        if option is None:
            raise NotFound(NOT_FOUND)
        try:
            seen = await see_project(session, self.ctx.directory, option.project_id, user_id)
        except NotFound:
            raise NotFound(NOT_FOUND) from None
        return option, seen

    @override
    async def ListFieldOptions(
        self, request: field_option_pb2.ListFieldOptionsRequest, context: Context
    ) -> field_option_pb2.ListFieldOptionsResponse:
        """A project's options of one field, in display order."""
        user_id = caller_id()
        field_type = _field_type(request.field_type)
        project_id = await self._project_id(request.project_id, user_id)
        async with self.ctx.database.unit_of_work() as session:
            await see_project(session, self.ctx.directory, project_id, user_id)
            options = await list_options(session, project_id=project_id, field_type=field_type)
        return field_option_pb2.ListFieldOptionsResponse(options=[option_message(o) for o in options])

    @override
    async def CreateFieldOption(
        self, request: field_option_pb2.CreateFieldOptionRequest, context: Context
    ) -> field_option_pb2.CreateFieldOptionResponse:
        """Add an option to a project's field (OWNER or ADMIN)."""
        user_id = caller_id()
        field_type = _field_type(request.field_type)
        value = _value(request.value)
        label = _label(request.label)
        color = _color(request.color)
        display_order = _display_order(request.display_order) if request.HasField("display_order") else None
        project_id = await self._project_id(request.project_id, user_id)
        async with self.ctx.database.unit_of_work() as session:
            seen = await see_project(session, self.ctx.directory, project_id, user_id)
            require_manager(seen, MANAGERS_ONLY)
            option = await create_option(
                session,
                project_id=project_id,
                field_type=field_type,
                value=value,
                label=label,
                color=color,
                display_order=display_order,
            )
        return field_option_pb2.CreateFieldOptionResponse(option=option_message(option))

    @override
    async def UpdateFieldOption(
        self, request: field_option_pb2.UpdateFieldOptionRequest, context: Context
    ) -> field_option_pb2.UpdateFieldOptionResponse:
        """Change an option's label, colour or display order (OWNER or ADMIN)."""
        user_id = caller_id()
        option_id = parse_uuid(request.option_id, field="optionId")
        label = _label(request.label) if request.HasField("label") else None
        color = _color(request.color) if request.HasField("color") else None
        order = _display_order(request.display_order) if request.HasField("display_order") else None
        async with self.ctx.database.unit_of_work() as session:
            option, seen = await self._option(session, option_id, user_id)
            require_manager(seen, MANAGERS_ONLY)
            if label is not None:
                option.label = label
            if color is not None:
                option.color = color
            if order is not None:
                option.display_order = order
            option.updated_at = _now()
            session.add(option)
            await session.flush()
        return field_option_pb2.UpdateFieldOptionResponse(option=option_message(option))

    @override
    async def DeleteFieldOption(
        self, request: field_option_pb2.DeleteFieldOptionRequest, context: Context
    ) -> field_option_pb2.DeleteFieldOptionResponse:
        """Delete an option (OWNER or ADMIN); boards that had it lose that field."""
        user_id = caller_id()
        option_id = parse_uuid(request.option_id, field="optionId")
        async with self.ctx.database.unit_of_work() as session:
            option, seen = await self._option(session, option_id, user_id)
            require_manager(seen, MANAGERS_ONLY)
            await delete_option(session, option=option)
        return field_option_pb2.DeleteFieldOptionResponse(message="Field option deleted successfully")

    @override
    async def ReorderFieldOptions(
        self, request: field_option_pb2.ReorderFieldOptionsRequest, context: Context
    ) -> field_option_pb2.ReorderFieldOptionsResponse:
        """Put a field's options in the given order (OWNER or ADMIN)."""
        user_id = caller_id()
        field_type = _field_type(request.field_type)
        option_ids = [parse_uuid(value, field="optionIds") for value in request.option_ids]
        project_id = await self._project_id(request.project_id, user_id)
        async with self.ctx.database.unit_of_work() as session:
            seen = await see_project(session, self.ctx.directory, project_id, user_id)
            require_manager(seen, MANAGERS_ONLY)
            options = await reorder_options(
                session, project_id=project_id, field_type=field_type, option_ids=option_ids
            )
        return field_option_pb2.ReorderFieldOptionsResponse(options=[option_message(o) for o in options])
