"""Small conversions every servicer needs: request ids, the calling user, timestamps, the context type.

Each service wrote these itself (three copies, drifting in details such as naive datetimes); they live
here once so a new service starts with them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from typing_extensions import TypeAliasType

from mesh._context import current_user
from mesh._errors import InvalidField

# The servicer context every generated servicer method receives.
Context = TypeAliasType("Context", grpc.aio.ServicerContext[Any, Any])


def parse_uuid(value: str, *, field: str, allow_nil: bool = True) -> uuid.UUID:
    """A UUID from a request field; INVALID_ARGUMENT naming the field when it is not one.

    ``allow_nil=False`` also refuses the all-zero UUID, for ids that must name a real row.
    """
    try:
        parsed = uuid.UUID(value.strip())
    except ValueError:
        raise InvalidField(field, "must be a UUID") from None
    if not allow_nil and parsed.int == 0:
        raise InvalidField(field, "must not be the nil UUID")
    return parsed


def parse_uuids(values: Iterable[str], *, field: str) -> list[uuid.UUID]:
    """UUIDs from a repeated field, duplicates dropped, order kept."""
    return list(dict.fromkeys(parse_uuid(value, field=field) for value in values))


def caller_id() -> uuid.UUID:
    """The end user of the call being served, as a UUID (UNAUTHENTICATED when there is none)."""
    return parse_uuid(current_user().user_id, field="sub")


def timestamp(value: datetime | None) -> Timestamp | None:
    """A protobuf Timestamp, or ``None`` (the field stays unset and is left out of the JSON).

    A naive datetime is taken as UTC: that is what every service stores.
    """
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return stamp


def optional_datetime(message: Message, field: str) -> datetime | None:
    """The aware datetime of a Timestamp field of ``message`` when it is set, else ``None``."""
    if not message.HasField(field):
        return None
    stamp: Timestamp = getattr(message, field)
    return stamp.ToDatetime(tzinfo=UTC)
