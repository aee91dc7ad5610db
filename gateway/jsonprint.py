"""Proto3 JSON printing compiled once per message type, as ``MessageToDict`` would print it.

``message_to_dict(message)`` returns exactly what ``json_format.MessageToDict(message,
always_print_fields_with_no_presence=True)`` returns (same keys, same key order, same values; one
deliberate difference, whole numbers in a ``google.protobuf.Value``, below) without
its per-call, per-field descriptor dispatch: the first time a message type is printed, a Python function
is written for its fields (see ``_regular_printer``) and compiled, and that printer is cached by the
type's full name. The gateway prints every response with it (gateway/transcode.py ``to_json``).

The key order follows json_format's: first the fields ``ListFields()`` reports (those set, by field
number), then the fields without presence that were not set, in declaration order, with their defaults.
Fields with presence (message fields, proto3 ``optional``, oneof members, proto2 singular fields) are
printed only when set.

Values follow json_format: 64-bit integers as strings, float and double as numbers with NaN and the
infinities as strings (a float with the fewest digits that read back as the same float32), bytes in
base64, enums by name (the number when unknown), map keys as strings. Well-known types too: Timestamp
and Duration as strings with 0, 3, 6 or 9 fractional digits, the wrappers as their bare value,
Struct/Value/ListValue as plain JSON (whole numbers in them as integers: ``1``, where json_format
writes ``1.0``), FieldMask as its camelCase string, Empty as ``{}``. ``Any`` and
messages with extensions are left to json_format's printer; so is any message whose compiled printing fails
(an invalid Timestamp, a closed enum's unknown number, a non-finite ``Value.number_value``), so that
json_format raises its own error. tests/gateway/test_jsonprint.py compares the two on generated
messages of every type of the platform.

``encode(document)`` writes the printed document as compact UTF-8 JSON with orjson, which on a
200-board listing takes a twentieth of the time ``json.dumps`` takes (``python -m bench.gateway
json-print``).
"""

from __future__ import annotations

import binascii
import json
import keyword
import math
from collections.abc import Callable
from datetime import date
from typing import Any, cast

import orjson
from google.protobuf import descriptor_pool, json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.internal.type_checkers import ToShortestFloat
from google.protobuf.message import Message

Converter = Callable[[Any], Any]

_NAN = "NaN"
_INFINITY = "Infinity"
_NEG_INFINITY = "-Infinity"

# Timestamp and Duration bounds, as google.protobuf's well-known types check them.
_TIMESTAMP_SECONDS_MIN = -62135596800
_TIMESTAMP_SECONDS_MAX = 253402300799
_DURATION_SECONDS_MAX = 315576000000
_NANOS_PER_SECOND = 1_000_000_000
_SECONDS_PER_DAY = 86400
_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()
_MAX_EXACT_INTEGER = 2**53


def encode(document: Any) -> bytes:
    """``document`` as compact UTF-8 JSON: the values ``json.dumps(document, ensure_ascii=False)`` writes.

    orjson spells some floats otherwise (``0.00001`` for ``1e-05``), the same number to any reader. It
    refuses a string that is not valid UTF-8 (a lone surrogate, which only a client's own ``\\ud800``
    escape can bring in, echoed in an error message): that document is written by json, with ASCII
    escapes, rather than failing the response.
    """
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:
        return json.dumps(document, separators=(",", ":")).encode()


def message_to_dict(message: Message) -> Any:
    """Proto3 JSON of ``message`` as ``MessageToDict(..., always_print_fields_with_no_presence=True)``."""
    try:
        return printer_of(message)(message)
    except Exception:
        # Whatever the compiled printer cannot print, json_format prints (or refuses) itself.
        return _fallback(message)


def _whole(number: float) -> Any:
    """A Value's number as JSON prints it here: a whole number as an int (within 2**53), else as is."""
    if number.is_integer() and abs(number) <= _MAX_EXACT_INTEGER:
        return int(number)
    return number


# json_format's printer (private, and absent from its type stubs), with one method changed.
class _Printer(json_format._Printer):  # type: ignore[misc,name-defined]
    """``MessageToDict``'s printer with a Value's whole numbers as integers, as the compiled one prints
    them, so that a message printed by the fallback (an ``Any``, say) reads the same.
    """

    def _ValueMessageToJsonObject(self, message: Message) -> Any:  # noqa: N802 - json_format's name
        value = super()._ValueMessageToJsonObject(message)
        return _whole(value) if isinstance(value, float) else value


_FALLBACK = _Printer(always_print_fields_with_no_presence=True)


# Full name → (descriptor, printer), the first type of each name; a type of the same name from another
# pool (a test's dynamic pool) is cached by its descriptor instead.
_printers: dict[str, tuple[Descriptor, Converter]] = {}
_elsewhere: dict[Descriptor, Converter] = {}


def printer_of(message: Message) -> Converter:
    """The compiled printer of a message's type."""
    # The typing stubs name upb's descriptor class apart; at run time it is the one descriptor type.
    return printer_for(cast("Descriptor", message.DESCRIPTOR))


def printer_for(descriptor: Descriptor) -> Converter:
    """The compiled printer of one message type (made on first use, then cached)."""
    cached = _printers.get(descriptor.full_name)
    if cached is not None and cached[0] is descriptor:
        return cached[1]
    return _elsewhere.get(descriptor) or _compile(descriptor)


def _register(descriptor: Descriptor, printer: Converter) -> None:
    cached = _printers.setdefault(descriptor.full_name, (descriptor, printer))
    if cached[0] is not descriptor:
        _elsewhere[descriptor] = printer


def _compile(descriptor: Descriptor) -> Converter:
    full_name = descriptor.full_name
    printer: Converter
    if descriptor.file.name == "google/protobuf/wrappers.proto":
        printer = _wrapper_printer(descriptor)
    elif full_name in _WELL_KNOWN:
        printer = _WELL_KNOWN[full_name]
    elif full_name == "google.protobuf.Any" or descriptor.extension_ranges:
        printer = _fallback
    else:
        # Registered before its fields are compiled, so a recursive type finds itself.
        return _regular_printer(descriptor)
    _register(descriptor, printer)
    return printer


def _fallback(message: Message) -> Any:
    return _FALLBACK._MessageToJsonObject(message)


# ---- regular messages ----


def _regular_printer(descriptor: Descriptor) -> Converter:
    """A message type's printer: Python source written for its fields, compiled once.

    For ``Board`` it reads (abridged)::

        def print_message(m):
            js = {}
            v0 = m.board_id
            if v0:
                js['boardId'] = v0
            if m.HasField('assignee_id'):
                js['assigneeId'] = m.assignee_id
            v7 = m.custom_fields
            if v7:
                js['customFields'] = {k: v7[k] for k in v7}
            if m.HasField('start_date'):
                js['startDate'] = _c8(m.start_date)
            ...
            if not v0:
                js['boardId'] = _d0
            if not v7:
                js['customFields'] = {}
            ...
            return js

    The set fields come first, by field number, as ``ListFields()`` lists them; then the unset fields
    without presence, in declaration order, with their defaults. A field without presence counts as set
    as upb counts it: a nonzero value, a non-empty string, list or map; for a float, any bit set, so
    ``-0.0`` is set (and printed first) as well as NaN.
    """
    namespace: dict[str, Any] = {"_negative": _negative}
    first: dict[int, list[str]] = {}
    second: list[str] = []
    deferred: list[tuple[int, FieldDescriptor]] = []
    for index, field in enumerate(descriptor.fields):
        key = repr(field.json_name)
        name = field.name
        read = f"m.{name}" if name.isidentifier() and not keyword.iskeyword(name) else f"getattr(m, {name!r})"
        value = f"v{index}"
        if _is_map(field):
            entry = field.message_type
            assert entry is not None
            print_key = _map_key(entry.fields_by_name["key"])
            print_value = _call(entry.fields_by_name["value"], index, f"{value}[k]", namespace, deferred)
            printed, is_set, default = f"{{{print_key}: {print_value} for k in {value}}}", value, "{}"
        elif field.is_repeated:
            element = _call(field, index, "x", namespace, deferred)
            printed = f"list({value})" if element == "x" else f"[{element} for x in {value}]"
            is_set, default = value, "[]"
        elif field.has_presence:
            printed = _call(field, index, read, namespace, deferred)
            first[field.number] = [f"if m.HasField({name!r}):", f"    js[{key}] = {printed}"]
            continue
        else:
            printed = _call(field, index, value, namespace, deferred)
            is_set = value
            if field.cpp_type in (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE):
                is_set = f"({value} or _negative({value}))"
            default = f"_d{index}"
            convert = namespace.get(f"_c{index}")
            namespace[default] = field.default_value if convert is None else convert(field.default_value)
        first[field.number] = [f"{value} = {read}", f"if {is_set}:", f"    js[{key}] = {printed}"]
        second += [f"if not {is_set}:", f"    js[{key}] = {default}"]
    body = [line for number in sorted(first) for line in first[number]] + second
    source = "\n    ".join(["def print_message(m):", "js = {}", *body, "return js"])
    exec(compile(source, f"<jsonprint {descriptor.full_name}>", "exec"), namespace)  # noqa: S102
    printer: Converter = namespace["print_message"]
    printer.__doc__ = source
    # Registered before the printers of its message fields are looked up, so a recursive type (or a
    # cycle of types) finds itself; the generated code reads them from its globals when it runs.
    _register(descriptor, printer)
    for index, field in deferred:
        assert field.message_type is not None
        namespace[f"_c{index}"] = printer_for(field.message_type)
    return printer


def _call(
    field: FieldDescriptor,
    index: int,
    argument: str,
    namespace: dict[str, Any],
    deferred: list[tuple[int, FieldDescriptor]],
) -> str:
    """The expression printing one value of ``field`` (an element or a map value)."""
    if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        deferred.append((index, field))
        return f"_c{index}({argument})"
    convert = _value_converter(field)
    if convert is None:
        return argument
    namespace[f"_c{index}"] = convert
    return f"_c{index}({argument})"


def _map_key(field: FieldDescriptor) -> str:
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return '("true" if k else "false")'
    if field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
        return "k"
    return "str(k)"


def _negative(value: float) -> bool:
    return math.copysign(1.0, value) < 0


def _is_map(field: FieldDescriptor) -> bool:
    message_type = field.message_type
    return bool(
        field.type == FieldDescriptor.TYPE_MESSAGE
        and message_type is not None
        and message_type.has_options
        and message_type.GetOptions().map_entry
    )


def _value_converter(field: FieldDescriptor) -> Converter | None:
    """One value of a field (an element, for a repeated one) → JSON; None when printed as it is."""
    cpp_type = field.cpp_type
    if cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        assert field.message_type is not None
        return printer_for(field.message_type)
    if cpp_type == FieldDescriptor.CPPTYPE_ENUM:
        assert field.enum_type is not None
        return _enum_converter(field.enum_type)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return _base64
    if cpp_type not in _SCALARS:
        raise TypeError(f"no JSON printing for {field.full_name}")  # pragma: no cover
    return _SCALARS[cpp_type]


def _base64(value: bytes) -> str:
    return binascii.b2a_base64(value, newline=False).decode("ascii")


def _non_finite(value: float) -> str:
    if math.isnan(value):
        return _NAN
    return _NEG_INFINITY if value < 0 else _INFINITY


def _double(value: float) -> Any:
    if math.isfinite(value):
        return value
    return _non_finite(value)


def _float(value: float) -> Any:
    if math.isfinite(value):
        return ToShortestFloat(value)
    return _non_finite(value)


# How each scalar type prints (None: as it is): 64-bit integers as strings, floats with their
# non-finite values as strings, a float with the fewest digits that read back to the same float32.
_SCALARS: dict[int, Converter | None] = {
    FieldDescriptor.CPPTYPE_INT32: None,
    FieldDescriptor.CPPTYPE_UINT32: None,
    FieldDescriptor.CPPTYPE_BOOL: None,
    FieldDescriptor.CPPTYPE_STRING: None,
    FieldDescriptor.CPPTYPE_INT64: str,
    FieldDescriptor.CPPTYPE_UINT64: str,
    FieldDescriptor.CPPTYPE_DOUBLE: _double,
    FieldDescriptor.CPPTYPE_FLOAT: _float,
}


def _enum_converter(enum: EnumDescriptor) -> Converter:
    if enum.full_name == "google.protobuf.NullValue":
        return _null
    # values_by_number[n], as json_format looks it up: with aliases, iterating the mapping may give
    # another value of the number than looking the number up does.
    by_number = enum.values_by_number
    names = {number: _enum_json_name(by_number[number]) for number in {value.number for value in enum.values}}
    if enum.is_closed:
        # A closed enum's unknown number: json_format refuses it (KeyError here, so it falls back).
        return names.__getitem__

    def enum_name(number: int) -> Any:
        return names.get(number, number)

    return enum_name


def _null(value: int) -> None:
    return None


def _enum_json_name(value: Any) -> str:
    """An enum value's JSON name: its ``pb.enumvalue.json`` option's string when it has one, as
    json_format honours it, else its name."""
    try:
        extension = descriptor_pool.Default().FindExtensionByName("pb.enumvalue.json")
    except KeyError:
        return str(value.name)
    options = value.GetOptions()
    if options.HasExtension(extension):
        return str(options.Extensions[extension].string)
    return str(value.name)


def _wrapper_printer(descriptor: Descriptor) -> Converter:
    # A wrapper prints as its value, default or not.
    convert = _value_converter(descriptor.fields_by_name["value"])
    if convert is None:

        def print_plain(message: Any) -> Any:
            return message.value

        return print_plain
    convert_value = convert

    def print_wrapper(message: Any) -> Any:
        return convert_value(message.value)

    return print_wrapper


# ---- well-known types ----

# Day number since the epoch → "YYYY-MM-DDT" (a board list's timestamps fall on a few days), and the
# clock's "HH:" and "MM:SS" parts.
_days: dict[int, str] = {}
_HOURS = [f"{hour:02d}:" for hour in range(24)]
_MINUTES_SECONDS = [f"{minute:02d}:{second:02d}" for minute in range(60) for second in range(60)]


def _date_prefix(days: int) -> str:
    if len(_days) >= 4096:
        _days.clear()
    day = date.fromordinal(_EPOCH_ORDINAL + days)
    prefix = _days[days] = f"{day.year:04d}-{day.month:02d}-{day.day:02d}T"
    return prefix


def _timestamp(message: Any) -> str:
    """RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as ``Timestamp.ToJsonString``."""
    seconds: int = message.seconds
    nanos: int = message.nanos
    if not (_TIMESTAMP_SECONDS_MIN <= seconds <= _TIMESTAMP_SECONDS_MAX and 0 <= nanos < _NANOS_PER_SECOND):
        raise ValueError("Timestamp is not valid")
    days = seconds // _SECONDS_PER_DAY
    rest = seconds - days * _SECONDS_PER_DAY
    text = (_days.get(days) or _date_prefix(days)) + _HOURS[rest // 3600] + _MINUTES_SECONDS[rest % 3600]
    if not nanos:
        return text + "Z"
    return text + _fraction(nanos) + "Z"


def _fraction(nanos: int) -> str:
    """3, 6 or 9 fractional digits, as few as represent ``nanos`` (> 0) exactly."""
    if nanos % 1000:
        return f".{nanos:09d}"
    if nanos % 1_000_000:
        return f".{nanos // 1000:06d}"
    return f".{nanos // 1_000_000:03d}"


def _duration(message: Any) -> str:
    seconds: int = message.seconds
    nanos: int = message.nanos
    if (
        not -_DURATION_SECONDS_MAX <= seconds <= _DURATION_SECONDS_MAX
        or not -_NANOS_PER_SECOND < nanos < _NANOS_PER_SECOND
        or (nanos < 0 < seconds)
        or (seconds < 0 < nanos)
    ):
        raise ValueError("Duration is not valid")
    if seconds < 0 or nanos < 0:
        return f"-{-seconds}{_fraction(-nanos) if nanos else ''}s"
    return f"{seconds}{_fraction(nanos) if nanos else ''}s"


def _field_mask(message: Any) -> Any:
    return message.ToJsonString()


def _value(message: Any) -> Any:
    kind = message.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "number_value":
        number = message.number_value
        if not math.isfinite(number):
            raise ValueError("a Value's number_value cannot be NaN or infinite in JSON")
        # A whole number prints as one ({"count": 1}, not 1.0): JSON has one number type, and a
        # client's 1 should read back as 1. Past 2**53 a double no longer holds every integer, so
        # those keep their float form.
        return _whole(number)
    if kind == "string_value":
        return message.string_value
    if kind == "bool_value":
        return message.bool_value
    if kind == "struct_value":
        return _struct(message.struct_value)
    if kind == "list_value":
        return _list_value(message.list_value)
    raise ValueError(f"unknown Value kind {kind}")  # pragma: no cover


def _list_value(message: Any) -> list[Any]:
    return [_value(value) for value in message.values]


def _struct(message: Any) -> dict[str, Any]:
    fields = message.fields
    return {key: _value(fields[key]) for key in fields}


_WELL_KNOWN: dict[str, Converter] = {
    "google.protobuf.Timestamp": _timestamp,
    "google.protobuf.Duration": _duration,
    "google.protobuf.FieldMask": _field_mask,
    "google.protobuf.Struct": _struct,
    "google.protobuf.Value": _value,
    "google.protobuf.ListValue": _list_value,
}
