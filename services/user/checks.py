"""Checks of request values that every part of the user service shares; no SQL, no protobuf."""

from __future__ import annotations

import uuid

from mesh import InvalidField, parse_uuid

# Internal batch calls are bounded so one call cannot ask for the whole table.
MAX_BATCH = 500


def parse_user_id(value: str, *, field: str = "userId") -> uuid.UUID:
    """A user id from a request field; INVALID_ARGUMENT naming the field when it is not a UUID."""
    return parse_uuid(value, field=field)


def bounded_text(value: str, *, field: str, maximum: int, minimum: int = 1) -> str:
    """Trimmed text within bounds; INVALID_ARGUMENT naming the field otherwise."""
    text = value.strip()
    if len(text) < minimum:
        raise InvalidField(field, "must not be empty")
    if len(text) > maximum:
        raise InvalidField(field, f"must be at most {maximum} characters")
    return text
