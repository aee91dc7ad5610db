"""Conversions between protobuf and the board's Python values, shared by every servicer."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(value: datetime | None) -> Timestamp | None:
    """A protobuf Timestamp, or ``None`` (the field stays unset and is left out of the JSON)."""
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def optional_datetime(message: Message, field: str) -> datetime | None:
    """The datetime of a Timestamp field of ``message`` when it is set, else ``None``."""
    if not message.HasField(field):
        return None
    stamp: Timestamp = getattr(message, field)
    return stamp.ToDatetime(tzinfo=UTC)
