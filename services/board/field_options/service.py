"""The options of a project's custom fields (stage, importance, role): the kanban's columns and tags.

The domain layer: keyword-only, session first, no protobuf (the API is ``servicer.py``).

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

from mesh import InvalidField, NotFound
from services.board.access import Memberships, Seen, require_manager, see_project
from services.board.models import FIELD_TYPES, FieldOption

VALUE_MAX = 100
LABEL_MAX = 200
# #RGB, #RGBA, #RRGGBB or #RRGGBBAA.
COLOR = re.compile(r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
MANAGERS_ONLY = "Only project owner or admin can manage field options"
NOT_FOUND = "Field option not found"


def current_time() -> datetime:
    """When an option changes."""
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------------
# Validation


def clean_field_type(value: str) -> str:
    """stage, importance or role, from any case; INVALID_ARGUMENT naming fieldType otherwise."""
    field_type = value.strip().lower()
    if not field_type:
        raise InvalidField("fieldType", "is required")
    if field_type not in FIELD_TYPES:
        raise InvalidField("fieldType", f"must be one of: {', '.join(FIELD_TYPES)}")
    return field_type


def clean_value(value: str) -> str:
    """The trimmed option value (1-100 characters)."""
    stripped = value.strip()
    if not 1 <= len(stripped) <= VALUE_MAX:
        raise InvalidField("value", f"must be 1-{VALUE_MAX} characters")
    return stripped


def clean_label(value: str) -> str:
    """The trimmed label (1-200 characters)."""
    stripped = value.strip()
    if not 1 <= len(stripped) <= LABEL_MAX:
        raise InvalidField("label", f"must be 1-{LABEL_MAX} characters")
    return stripped


def clean_color(value: str) -> str:
    """The trimmed hex colour."""
    stripped = value.strip()
    if COLOR.fullmatch(stripped) is None:
        raise InvalidField("color", "must be a hex colour: #RGB, #RGBA, #RRGGBB or #RRGGBBAA")
    return stripped


def clean_display_order(value: int) -> int:
    """A display order (not negative)."""
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
    now = current_time()
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
    now = current_time()
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


async def get_option_for_update(
    session: AsyncSession, *, option_id: uuid.UUID, user_id: uuid.UUID, memberships: Memberships
) -> tuple[FieldOption, Seen]:
    """The option, locked, and its project as the caller sees it; NOT_FOUND for other workspaces."""
    option = await session.scalar(
        select(FieldOption).where(col(FieldOption.id) == option_id).with_for_update()
    )
    if option is None:
        raise NotFound(NOT_FOUND)
    try:
        seen = await see_project(session, memberships, option.project_id, user_id)
    except NotFound:
        raise NotFound(NOT_FOUND) from None
    return option, seen


async def update_option(
    session: AsyncSession,
    *,
    option: FieldOption,
    seen: Seen,
    label: str | None,
    color: str | None,
    display_order: int | None,
) -> FieldOption:
    """Change the given label, colour and display order (the caller manages the project)."""
    require_manager(seen, MANAGERS_ONLY)
    if label is not None:
        option.label = label
    if color is not None:
        option.color = color
    if display_order is not None:
        option.display_order = display_order
    option.updated_at = current_time()
    session.add(option)
    await session.flush()
    return option
