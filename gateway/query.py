"""Setting request message fields from strings: query parameters and path variables.

A key is a dotted field path, each part the proto name or the JSON name (``filter.owner_id`` and
``filter.ownerId`` are the same field). Nested messages are created along the way. The value is read the
way grpc-gateway reads query parameters: one value per occurrence (``?ids=a&ids=b`` appends twice and
``?ids=a,b`` is the one element ``"a,b"``), scalars in their proto3 JSON spelling, and the well-known types
``Timestamp``, ``Duration``, ``FieldMask`` and the wrappers from their JSON string forms.

Each ``(message type, key)`` is resolved once into a :class:`FieldTarget` holding a setter specialised
for the field's type, so a request costs a cache probe and the conversion itself.

Bad values raise :class:`~mesh.InvalidField` naming the field by its JSON path, which the gateway turns
into a 400.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Final, cast

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from mesh import InvalidField

__all__ = ["FieldTarget", "apply_query", "resolve_field", "set_field"]

_NOT_SETTABLE: Final = "cannot be set from a query parameter"

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_FLOAT_WORDS: Final = frozenset({"nan", "inf", "infinity"})
_FLOAT32_MAX: Final = 3.4028234663852886e38
_BOOLS: Final = {"true": True, "false": False, "1": True, "0": False}
_URL_SAFE = str.maketrans("-_", "+/")
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    # A space where "+" was: an offset sent unencoded in a query string reaches us form-decoded.
    r"(?:[Zz]|([+ -])([0-9]{2}):([0-9]{2}))"
)
_DURATION = re.compile(r"(-)?([0-9]+)(?:\.([0-9]{1,9}))?s")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UPPER = re.compile(r"[A-Z]")

_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
# google.protobuf.Timestamp and Duration ranges, from their .proto comments.
_TIMESTAMP_MIN: Final = -62_135_596_800  # 0001-01-01T00:00:00Z
_TIMESTAMP_MAX: Final = 253_402_300_799  # 9999-12-31T23:59:59Z
_DURATION_MAX: Final = 315_576_000_000

_INT_RANGES: Final = {
    FieldDescriptor.TYPE_INT32: ("int32", -(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: ("int32", -(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: ("int32", -(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: ("uint32", 0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: ("uint32", 0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: ("int64", -(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: ("int64", -(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: ("int64", -(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: ("uint64", 0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: ("uint64", 0, 2**64 - 1),
}

_WRAPPERS: Final = frozenset(
    "google.protobuf." + name
    for name in (
        "DoubleValue",
        "FloatValue",
        "Int64Value",
        "UInt64Value",
        "Int32Value",
        "UInt32Value",
        "BoolValue",
        "StringValue",
        "BytesValue",
    )
)

_Parse = Callable[[str], object]
_Fill = Callable[[Message, object], None]
_Setter = Callable[[Message, str], None]


class _Rejected(Exception):
    """A conversion failed; ``reason`` completes "<field> ..." in the error the client sees."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FieldTarget:
    """Where a dotted key lands in a message type, and how a string is set there.

    ``proto_path`` and ``json_path`` are the canonical spellings of the key; ``descriptor`` is the last
    field. ``error`` says why no string can set it (a map, a plain message, a path through a repeated
    field), or is ``None``. ``ancestors`` is ``proto_path`` and each path above it, for checking bound
    fields.
    """

    proto_path: str
    json_path: str
    descriptor: FieldDescriptor
    error: str | None
    ancestors: tuple[str, ...] = field(repr=False)
    _setter: _Setter | None = field(repr=False, compare=False)

    def set(self, message: Message, value: str) -> None:
        """Convert ``value`` and set (or, for a repeated field, append) it; raise InvalidField if bad."""
        if self._setter is None:
            raise InvalidField(self.json_path, self.error or _NOT_SETTABLE)
        self._setter(message, value)

    def is_bound(self, bound: Collection[str]) -> bool:
        """Whether ``bound`` (proto paths set from the path or body) covers this field or a part of it."""
        for path in self.ancestors:
            if path in bound:
                return True
        if self.descriptor.message_type is not None:
            # "filter" as a key while "filter.owner_id" came from the path: it belongs to the path.
            inside = self.proto_path + "."
            return any(path.startswith(inside) for path in bound)
        return False


def set_field(message: Message, path: str, value: str) -> None:
    """Set the field at dotted ``path`` (proto or JSON names) of ``message`` from the string ``value``.

    Raises :class:`~mesh.InvalidField` if the value does not convert or the field cannot take a string,
    and ``KeyError`` if there is no such field: paths come from our own templates, so that is a bug
    :func:`resolve_field` should have caught when the routes were built.
    """
    target = _resolve(message.DESCRIPTOR, path)
    if target is None:
        raise KeyError(f"{message.DESCRIPTOR.full_name} has no field {path!r}")
    target.set(message, value)


def apply_query(message: Message, params: Iterable[tuple[str, str]], *, bound: Collection[str] = ()) -> None:
    """Set fields of ``message`` from query parameters, in order.

    Keys naming no field are ignored (clients send cache-busters), and so are keys in or under ``bound``,
    the proto paths the path template or body already set. A repeated field takes one element per
    occurrence of its key. Raises :class:`~mesh.InvalidField` for a value that does not convert or a key
    naming a field no string can set.
    """
    descriptor = message.DESCRIPTOR
    for key, value in params:
        target = _resolve(descriptor, key)
        if target is None or (bound and target.is_bound(bound)):
            continue
        setter = target._setter
        if setter is None:
            raise InvalidField(target.json_path, target.error or _NOT_SETTABLE)
        setter(message, value)


def resolve_field(descriptor: Descriptor, path: str) -> FieldTarget | None:
    """The field a dotted ``path`` (proto or JSON names) names in ``descriptor``, or ``None``.

    Cached per ``(descriptor, path)``. Routing calls it at start to check each path variable.
    """
    return _resolve(descriptor, path)


# Bounded: keys come from clients, and unknown ones are cached too (as None).
@lru_cache(maxsize=4096)
def _resolve(descriptor: Descriptor, path: str) -> FieldTarget | None:
    fields: list[FieldDescriptor] = []
    current: Descriptor | None = descriptor
    for part in path.split("."):
        if current is None:
            return None  # a path going on past a scalar
        found = current.fields_by_name.get(part) or _json_fields(current).get(part)
        if found is None:
            return None
        fields.append(found)
        current = found.message_type
    last = fields[-1]
    proto_parts = [f.name for f in fields]
    proto_path = ".".join(proto_parts)
    json_path = ".".join(f.json_name for f in fields)
    ancestors = tuple(".".join(proto_parts[: i + 1]) for i in range(len(proto_parts)))
    error: str | None = None
    setter: _Setter | None = None
    if any(f.is_repeated for f in fields[:-1]):
        error = _NOT_SETTABLE + " (it is inside a repeated field)"
    else:
        try:
            parse, fill = _converter(last)
        except _Rejected as exc:
            error = exc.reason
        else:
            setter = _make_setter(json_path, tuple(f.name for f in fields[:-1]), last, parse, fill)
    return FieldTarget(proto_path, json_path, last, error, ancestors, setter)


@lru_cache(maxsize=1024)
def _json_fields(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    return {f.json_name: f for f in descriptor.fields}


def _make_setter(
    json_path: str,
    parents: tuple[str, ...],
    descriptor: FieldDescriptor,
    parse: _Parse | None,
    fill: _Fill | None,
) -> _Setter:
    """A closure setting one field: conversion and navigation decided once, here."""
    name = descriptor.name
    repeated = descriptor.is_repeated
    oneof = descriptor.containing_oneof
    # A proto3 `optional` is a one-field oneof: nothing to conflict with.
    oneof_name = oneof.name if oneof is not None and len(oneof.fields) > 1 else None

    def setter(message: Message, value: str) -> None:
        try:
            parsed = value if parse is None else parse(value)
        except _Rejected as exc:
            raise InvalidField(json_path, exc.reason) from None
        for parent in parents:
            message = getattr(message, parent)
        if oneof_name is not None:
            other = message.WhichOneof(oneof_name)
            if other is not None and other != name:
                other_json = message.DESCRIPTOR.fields_by_name[other].json_name
                raise InvalidField(json_path, f"cannot be set together with {other_json}")
        try:
            if fill is None:
                if repeated:
                    getattr(message, name).append(parsed)
                else:
                    setattr(message, name, parsed)
            elif repeated:
                fill(getattr(message, name).add(), parsed)
            else:
                sub = getattr(message, name)
                sub.Clear()
                fill(sub, parsed)
                sub.SetInParent()  # an epoch Timestamp or a zero wrapper has no set fields, yet is present
        except (ValueError, TypeError):
            # The conversions accept only what the field can hold; what is left is text protobuf cannot
            # encode, such as a lone surrogate in a string.
            raise InvalidField(json_path, "is not a valid value") from None

    return setter


def _converter(descriptor: FieldDescriptor) -> tuple[_Parse | None, _Fill | None]:
    """How a string becomes this field's value: a parser, and for messages a filler; or _Rejected."""
    message_type = descriptor.message_type
    if message_type is None:
        return _scalar_parser(descriptor), None
    if message_type.GetOptions().map_entry:
        raise _Rejected(_NOT_SETTABLE + " (it is a map)")
    name = message_type.full_name
    if name == "google.protobuf.Timestamp":
        return _parse_timestamp, _fill_seconds_nanos
    if name == "google.protobuf.Duration":
        return _parse_duration, _fill_seconds_nanos
    if name == "google.protobuf.FieldMask":
        return _parse_field_mask, _fill_field_mask
    if name in _WRAPPERS:
        parse = _scalar_parser(message_type.fields_by_name["value"])
        return (parse or str), _fill_wrapper
    raise _Rejected(_NOT_SETTABLE)


def _scalar_parser(descriptor: FieldDescriptor) -> _Parse | None:
    """The parser for a non-message field; ``None`` for strings, which are taken as they are."""
    kind = descriptor.type
    if kind == FieldDescriptor.TYPE_ENUM and descriptor.enum_type is not None:
        return _enum_parser(descriptor.enum_type)
    if kind in _INT_RANGES:
        label, low, high = _INT_RANGES[kind]
        return _int_parser(label, low, high)
    return _PARSERS[kind]


def _int_parser(label: str, low: int, high: int) -> _Parse:
    def parse(value: str) -> int:
        if _INT.fullmatch(value) is None:
            raise _Rejected("must be an integer")
        # int() of a huge string is slow (and refused past 4300 digits): it is out of range anyway.
        if len(value) > 21 or not low <= (number := int(value)) <= high:
            raise _Rejected(f"is out of range for {label}")
        return number

    return parse


def _enum_parser(enum: EnumDescriptor) -> _Parse:
    by_name = {v.name: v.number for v in enum.values}
    known = frozenset(by_name.values())
    closed = enum.is_closed
    reason = f"is not a value of {enum.full_name}"

    def parse(value: str) -> int:
        number = by_name.get(value)
        if number is not None:
            return number
        if _INT.fullmatch(value) is None or len(value) > 11:
            raise _Rejected(reason)
        number = int(value)
        # An open (proto3) enum keeps numbers it does not know, as proto3 JSON does; a closed one cannot.
        if not -(2**31) <= number < 2**31 or (closed and number not in known):
            raise _Rejected(reason)
        return number

    return parse


def _parse_bool(value: str) -> bool:
    parsed = _BOOLS.get(value)
    if parsed is None:
        parsed = _BOOLS.get(value.lower())
        if parsed is None:
            raise _Rejected("must be true or false")
    return parsed


def _parse_double(value: str) -> float:
    # float() alone would also take "1_000", " 1 " and non-ASCII digits.
    if _FLOAT.fullmatch(value) is None:
        word = value[1:] if value.startswith(("+", "-")) else value
        if word.lower() not in _FLOAT_WORDS:
            raise _Rejected("must be a number")
    return float(value)


def _parse_float(value: str) -> float:
    number = _parse_double(value)
    if math.isfinite(number) and abs(number) > _FLOAT32_MAX:
        raise _Rejected("is out of range for float")
    return number


def _parse_bytes(value: str) -> bytes:
    # Standard or URL-safe alphabet, padding optional: clients differ, and neither is ambiguous.
    text = value.rstrip("=")
    if len(text) % 4 == 1:
        raise _Rejected("is not valid base64")
    try:
        return base64.b64decode(text.translate(_URL_SAFE) + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _Rejected("is not valid base64") from None


def _parse_timestamp(value: str) -> tuple[int, int]:
    found = _TIMESTAMP.fullmatch(value)
    if found is None:
        raise _Rejected("must be an RFC 3339 timestamp like 2024-01-31T09:30:00Z")
    year, month, day, hour, minute, second, fraction, sign, off_hour, off_minute = found.groups()
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise _Rejected("is not a valid date") from None
    if int(hour) > 23 or int(minute) > 59 or int(second) > 59:
        raise _Rejected("is not a valid time of day")
    seconds = days * 86_400 + int(hour) * 3600 + int(minute) * 60 + int(second)
    if sign is not None:
        if int(off_hour) > 23 or int(off_minute) > 59:
            raise _Rejected("has an invalid UTC offset")
        offset = int(off_hour) * 3600 + int(off_minute) * 60
        seconds -= -offset if sign == "-" else offset
    if not _TIMESTAMP_MIN <= seconds <= _TIMESTAMP_MAX:
        raise _Rejected("is out of range for a timestamp")
    return seconds, int(fraction.ljust(9, "0")) if fraction else 0


def _parse_duration(value: str) -> tuple[int, int]:
    found = _DURATION.fullmatch(value)
    if found is None:
        raise _Rejected("must be a duration in seconds like 1.5s")
    negative, whole, fraction = found.groups()
    if len(whole) > 12 or (seconds := int(whole)) > _DURATION_MAX:
        raise _Rejected("is out of range for a duration")
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    # Both parts carry the sign, as google.protobuf.Duration requires.
    return (-seconds, -nanos) if negative else (seconds, nanos)


def _parse_field_mask(value: str) -> list[str]:
    # Here, unlike elsewhere, the comma is a separator: it is FieldMask's own JSON form.
    if not value:
        return []
    paths = []
    for path in value.split(","):
        parts = path.split(".")
        if not all(_IDENT.fullmatch(part) for part in parts):
            raise _Rejected("must be comma-separated field paths like name,settings.color")
        # JSON spells masks in lowerCamelCase; the message holds proto names. snake_case passes through.
        paths.append(".".join(_UPPER.sub(_snake, part) for part in parts))
    return paths


def _snake(found: re.Match[str]) -> str:
    return "_" + found.group().lower()


_PARSERS: Final[dict[int, _Parse | None]] = {
    FieldDescriptor.TYPE_STRING: None,
    FieldDescriptor.TYPE_BOOL: _parse_bool,
    FieldDescriptor.TYPE_BYTES: _parse_bytes,
    FieldDescriptor.TYPE_DOUBLE: _parse_double,
    FieldDescriptor.TYPE_FLOAT: _parse_float,
}


def _fill_seconds_nanos(message: Message, parsed: object) -> None:
    seconds, nanos = cast("tuple[int, int]", parsed)
    setattr(message, "seconds", seconds)  # noqa: B010 -- Message has no typed attributes
    setattr(message, "nanos", nanos)  # noqa: B010


def _fill_field_mask(message: Message, parsed: object) -> None:
    getattr(message, "paths").extend(parsed)  # noqa: B009 -- Message has no typed attributes


def _fill_wrapper(message: Message, parsed: object) -> None:
    setattr(message, "value", parsed)  # noqa: B010 -- Message has no typed attributes
