"""Field options over gRPC: protobuf ↔ :mod:`services.board.field_options.service`; no SQL here."""

from __future__ import annotations

import uuid

from typing_extensions import override
from wealist.board.v1 import field_option_pb2, field_option_pb2_grpc

from mesh import Context, InvalidField, caller_id, parse_uuid, timestamp
from services.board.access import require_manager, see_project
from services.board.context import BoardContext
from services.board.field_options.service import (
    MANAGERS_ONLY,
    clean_color,
    clean_display_order,
    clean_field_type,
    clean_label,
    clean_value,
    create_option,
    delete_option,
    get_option_for_update,
    list_options,
    reorder_options,
    update_option,
)
from services.board.models import FieldOption
from services.board.projects.service import current_project


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

    @override
    async def ListFieldOptions(
        self, request: field_option_pb2.ListFieldOptionsRequest, context: Context
    ) -> field_option_pb2.ListFieldOptionsResponse:
        """A project's options of one field, in display order."""
        user_id = caller_id()
        field_type = clean_field_type(request.field_type)
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
        field_type = clean_field_type(request.field_type)
        value = clean_value(request.value)
        label = clean_label(request.label)
        color = clean_color(request.color)
        display_order = (
            clean_display_order(request.display_order) if request.HasField("display_order") else None
        )
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
        label = clean_label(request.label) if request.HasField("label") else None
        color = clean_color(request.color) if request.HasField("color") else None
        order = clean_display_order(request.display_order) if request.HasField("display_order") else None
        async with self.ctx.database.unit_of_work() as session:
            option, seen = await get_option_for_update(
                session, option_id=option_id, user_id=user_id, memberships=self.ctx.directory
            )
            option = await update_option(
                session, option=option, seen=seen, label=label, color=color, display_order=order
            )
        return field_option_pb2.UpdateFieldOptionResponse(option=option_message(option))

    @override
    async def DeleteFieldOption(
        self, request: field_option_pb2.DeleteFieldOptionRequest, context: Context
    ) -> field_option_pb2.DeleteFieldOptionResponse:
        """Delete an option (OWNER or ADMIN); boards that had it lose that field."""
        user_id = caller_id()
        option_id = parse_uuid(request.option_id, field="optionId")
        async with self.ctx.database.unit_of_work() as session:
            option, seen = await get_option_for_update(
                session, option_id=option_id, user_id=user_id, memberships=self.ctx.directory
            )
            require_manager(seen, MANAGERS_ONLY)
            await delete_option(session, option=option)
        return field_option_pb2.DeleteFieldOptionResponse(message="Field option deleted successfully")

    @override
    async def ReorderFieldOptions(
        self, request: field_option_pb2.ReorderFieldOptionsRequest, context: Context
    ) -> field_option_pb2.ReorderFieldOptionsResponse:
        """Put a field's options in the given order (OWNER or ADMIN)."""
        user_id = caller_id()
        field_type = clean_field_type(request.field_type)
        option_ids = [parse_uuid(value, field="optionIds") for value in request.option_ids]
        project_id = await self._project_id(request.project_id, user_id)
        async with self.ctx.database.unit_of_work() as session:
            seen = await see_project(session, self.ctx.directory, project_id, user_id)
            require_manager(seen, MANAGERS_ONLY)
            options = await reorder_options(
                session, project_id=project_id, field_type=field_type, option_ids=option_ids
            )
        return field_option_pb2.ReorderFieldOptionsResponse(options=[option_message(o) for o in options])
