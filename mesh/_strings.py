"""Refusing NUL characters in requests, for every method of every service at once.

Postgres cannot store U+0000 in text, so a request carrying one used to end as a 500 from whichever
INSERT met it first. Protobuf accepts it in a ``string`` field, so the chain checks every request's strings
before the handler runs and answers INVALID_ARGUMENT naming the field (its proto JSON path, as
``InvalidField`` always does). No service can store such a string, so none needs to accept one.

The walk is planned once per message type: only fields that are strings, or messages that can hold
strings, are visited, and of those only the ones that are set.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from mesh._errors import InvalidField

NUL = "\x00"
REASON = "must not contain a NUL character"


@cache
def _may_hold_strings(descriptor: Descriptor) -> bool:
    return bool(_plan(descriptor))


@cache
def _plan(descriptor: Descriptor) -> tuple[FieldDescriptor, ...]:
    """The fields of ``descriptor`` that can hold a string, directly or in a nested message."""
    # A recursive type (google.protobuf.Value, say) would recurse forever: it is marked first.
    _IN_PROGRESS.add(descriptor.full_name)
    try:
        fields = []
        for field in descriptor.fields:
            if field.type == FieldDescriptor.TYPE_STRING:
                fields.append(field)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                nested = _message_type(field)
                if nested.full_name in _IN_PROGRESS or _may_hold_strings(nested):
                    fields.append(field)
        return tuple(fields)
    finally:
        _IN_PROGRESS.discard(descriptor.full_name)


_IN_PROGRESS: set[str] = set()


def _message_type(field: FieldDescriptor) -> Descriptor:
    nested = field.message_type
    assert nested is not None, field.full_name  # a message field always has its type
    return nested


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _in_strings(values: Iterable[str], name: str) -> Iterator[str]:
    for index, value in enumerate(values):
        if NUL in value:
            yield f"{name}[{index}]"


def _in_map(field: FieldDescriptor, container: Any, name: str) -> Iterator[str]:
    nested = _message_type(field).fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE
    for key in container:
        entry = f"{name}[{key!r}]"
        if isinstance(key, str) and NUL in key:
            yield entry
        value = container[key]
        if nested:
            yield from _nul_paths(value, f"{entry}.")
        elif isinstance(value, str) and NUL in value:
            yield entry


def _nul_paths(message: Message, prefix: str) -> Iterator[str]:
    for field in _plan(message.DESCRIPTOR):
        name = f"{prefix}{field.json_name}"
        value = getattr(message, field.name)
        if field.type == FieldDescriptor.TYPE_STRING:
            if not _is_repeated(field):
                if NUL in value:
                    yield name
            else:
                yield from _in_strings(value, name)
        elif not _is_repeated(field):
            if message.HasField(field.name):
                yield from _nul_paths(value, f"{name}.")
        elif _message_type(field).GetOptions().map_entry:
            yield from _in_map(field, value, name)
        else:
            for index, item in enumerate(value):
                yield from _nul_paths(item, f"{name}[{index}].")


def nul_field(message: Message) -> str | None:
    """The JSON path of the first string of ``message`` that holds a NUL character, else ``None``."""
    return next(_nul_paths(message, ""), None)


def refuse_nul(message: object) -> None:
    """INVALID_ARGUMENT naming the field when a string of the request holds a NUL character."""
    if isinstance(message, Message):
        path = nul_field(message)
        if path is not None:
            raise InvalidField(path, REASON)
