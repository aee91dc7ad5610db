"""A board's custom fields: option values at the API, option ids in the database.

``boards.custom_fields`` is JSONB mapping a field (stage, importance, role) to the id of one of the
project's options (``{"stage": "<option uuid>"}``), so renaming an option's label or colour needs no
board update and the list filter is a containment query on a GIN index. Everything the API reads or
writes speaks the option's *value* (``{"stage": "in_progress"}``): requests, responses and events. The
conversions both ways go through :class:`ProjectOptions`, loaded with one query per request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import inspect, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh import InvalidField
from services.board.models import FIELD_TYPES, FieldOption

FIELD = "customFields"
# The contract's message for a key or value the project does not have.
INVALID_VALUES = "Invalid custom field values"


class Option(NamedTuple):
    """What the conversions need of a field option (a plain row, not an ORM object)."""

    id: uuid.UUID
    field_type: str
    value: str
    label: str


@dataclass(frozen=True, slots=True)
class ProjectOptions:
    """A project's field options, indexed both ways; ``values`` maps an option id to its value."""

    by_id: Mapping[str, Option]
    by_value: Mapping[tuple[str, str], Option]
    values: Mapping[str, str]

    def option_id(self, field: str, value: str, *, name: str | None = None) -> str:
        """The id of ``field``'s option with ``value``; INVALID_ARGUMENT naming ``name`` otherwise."""
        where = name or f"{FIELD}.{field}"
        if field not in FIELD_TYPES:
            raise InvalidField(where, INVALID_VALUES)
        option = self.by_value.get((field, value))
        if option is None:
            raise InvalidField(where, INVALID_VALUES)
        return str(option.id)

    def to_ids(self, values: Mapping[str, str]) -> dict[str, str]:
        """Stored form of an API map: field → option id. An empty value leaves the field unset."""
        stored: dict[str, str] = {}
        for field, value in values.items():
            if field not in FIELD_TYPES:
                raise InvalidField(f"{FIELD}.{field}", INVALID_VALUES)
            if value == "":
                continue
            stored[field] = self.option_id(field, value)
        return stored

    def value(self, option_id: Any) -> str:
        """The value of a stored option id; "" when the option was deleted since (the contract's rule)."""
        return self.values.get(str(option_id), "")

    def label(self, option_id: Any) -> str:
        """The label of a stored option id (what notifications show); "" when unset or deleted."""
        if option_id is None:
            return ""
        option = self.by_id.get(str(option_id))
        return option.label if option is not None else ""

    def to_values(self, stored: Mapping[str, Any] | None) -> dict[str, str]:
        """API form of a stored map: field → option value, in the fields' canonical order."""
        if not stored:
            return {}
        return {field: self.value(stored[field]) for field in FIELD_TYPES if field in stored}

    def write_values(self, target: MutableMapping[str, str], option_ids: Sequence[str | None]) -> None:
        """:meth:`to_values` for the listing, straight into a message's map field.

        ``option_ids`` are a board's stored ids in ``FIELD_TYPES``' order, ``None`` for a field it does not
        have. Called once per board, so: one dict lookup per field, and no dict for the message to copy
        (filling a protobuf map in place costs half as much).
        """
        values = self.values
        for field, option_id in zip(FIELD_TYPES, option_ids, strict=True):
            if option_id is not None:
                target[field] = values.get(option_id, "")


# The table's columns: a select of them returns plain rows, without the ORM's instance loading.
OPTIONS = inspect(FieldOption).local_table.c
# What :func:`options_from` takes from each row, in this order.
OPTION_COLUMNS = (OPTIONS.id, OPTIONS.field_type, OPTIONS.value, OPTIONS.label)


def options_from(rows: Iterable[Option]) -> ProjectOptions:
    """The project's options indexed, from its rows (``id, field_type, value, label``)."""
    by_id: dict[str, Option] = {}
    by_value: dict[tuple[str, str], Option] = {}
    values: dict[str, str] = {}
    for row in rows:
        key = str(row.id)
        by_id[key] = row
        by_value[row.field_type, row.value] = row
        values[key] = row.value
    return ProjectOptions(by_id=by_id, by_value=by_value, values=values)


async def project_options(session: AsyncSession, project_id: uuid.UUID) -> ProjectOptions:
    """The project's options (one query, plain rows)."""
    statement = select(*OPTION_COLUMNS).where(OPTIONS.project_id == project_id)
    # A Core statement does not autoflush as an ORM query does: pending changes are flushed first.
    await session.flush()
    return options_from(Option(*row) for row in await (await session.connection()).execute(statement))


def string_values(values: Mapping[str, Any]) -> dict[str, str]:
    """A JSON object of field → value whose values must all be strings (``UpdateBoard``'s Struct)."""
    checked: dict[str, str] = {}
    for field, value in values.items():
        if not isinstance(value, str):
            raise InvalidField(f"{FIELD}.{field}", "must be a string (an option value)")
        checked[field] = value
    return checked


def parse_filter(raw: str) -> dict[str, str]:
    """The list filter: a JSON object string of field → option value; {} when the parameter is empty."""
    if not raw.strip():
        return {}
    try:
        document = json.loads(raw)
    except ValueError:
        raise InvalidField(FIELD, "Invalid customFields format: must be valid JSON") from None
    if not isinstance(document, dict):
        raise InvalidField(FIELD, "Invalid customFields format: must be a JSON object")
    return string_values(document)


def filter_ids(options: ProjectOptions, wanted: Mapping[str, str]) -> dict[str, str] | None:
    """The containment document for a value filter, or ``None`` when no board can match it.

    A key that is not a custom field is a client error (INVALID_ARGUMENT naming it); a value that no
    option of the project has matches nothing (an empty list: the filter asks, it does not write).
    """
    document: dict[str, str] = {}
    for field, value in wanted.items():
        if field not in FIELD_TYPES:
            raise InvalidField(f"{FIELD}.{field}", INVALID_VALUES)
        option = options.by_value.get((field, value))
        if option is None:
            return None
        document[field] = str(option.id)
    return document
