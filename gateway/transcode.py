"""Proto3 JSON both ways: HTTP request → request message, response message → the envelope's JSON.

Unknown request fields are ignored, as the original backends did; a value of the wrong type is a 400
naming the field by its JSON path. Responses print fields without presence (empty lists, ``false``,
``0``) because the web client reads them unconditionally; they are printed by a printer compiled once per
message type, which prints what ``json_format.MessageToDict`` would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from wealist.mesh.v1 import options_pb2

from gateway.jsonprint import message_to_dict
from gateway.query import apply_query, resolve_field, set_field
from gateway.routing import Route
from mesh import InvalidArgument, InvalidField

# json_format names the failing field in each nesting level: "Failed to parse a field: Failed to parse b".
_FAILED_FIELD = re.compile(r"Failed to parse (\w+) field")

# How deeply a client's JSON (a body, a WebSocket frame, a JSON query filter) may nest. The contract's
# deepest document is a few levels; Python's parser and json_format recurse per level and fail as a 500
# near a thousand, so anything past this is refused as a 400 first.
MAX_JSON_DEPTH = 64
_TOO_DEEP = object()

# Text the platform stores cannot hold NUL (Postgres refuses it in text and JSONB, which was a 500), and
# no field has a use for it: a client string carrying one is refused here, naming the field.
_NUL = "\x00"
_NUL_REASON = "must not contain the NUL character"


def _field_of(error: json_format.ParseError) -> str | None:
    names = _FAILED_FIELD.findall(str(error))
    return ".".join(names) if names else None


def parse_json_object(raw: bytes | str, *, field: str = "body") -> Any:
    """The decoded JSON of a body or frame; 400 when it is not JSON, nests past ``MAX_JSON_DEPTH`` or
    holds a NUL character (naming where).
    """
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidArgument(f"the request {field} is not valid JSON", code="MALFORMED_JSON") from None
    except RecursionError:
        document = None  # deeper than Python's own limit: refused below
    else:
        # Fewer brackets than the limit cannot nest past it: most bodies skip the walk.
        # Raw control characters are no valid JSON, so a NUL can only come in as its escape.
        if isinstance(raw, bytes):
            brackets, escaped_nul = raw.count(b"[") + raw.count(b"{"), b"\\u0000" in raw
        else:
            brackets, escaped_nul = raw.count("[") + raw.count("{"), "\\u0000" in raw
        if brackets <= MAX_JSON_DEPTH or not _nested_deeper(document, MAX_JSON_DEPTH):
            if escaped_nul and (where := _nul_path(document)) is not None:
                raise InvalidField(where or field, _NUL_REASON)
            return document
    raise InvalidField(field, f"nests deeper than {MAX_JSON_DEPTH} levels", code="MALFORMED_JSON")


def _nul_path(document: Any) -> str | None:
    """The dotted JSON path (``a.b[2]``) of the first string or key in ``document`` holding a NUL."""
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if _NUL in value:
                return path
        elif isinstance(value, dict):
            for key, child in value.items():
                child_path = f"{path}.{key}" if path else str(key)
                if _NUL in key:
                    return child_path
                stack.append((child, child_path))
        elif isinstance(value, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(value))
    return None


def _nested_deeper(document: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` levels in ``document`` (no recursion)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def merge_json(message: Message, document: Any, *, prefix: str = "") -> None:
    """Merge a decoded JSON value into ``message``; INVALID_ARGUMENT naming the field on a type error."""
    if not isinstance(document, dict):
        raise InvalidField(prefix or "body", "must be a JSON object")
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except json_format.ParseError as error:
        field = _field_of(error)
        path = ".".join(part for part in (prefix, field) if part) or "body"
        raise InvalidField(path, "has the wrong type or format") from None


def build_request(
    route: Route,
    path_values: Mapping[str, str],
    query: Iterable[tuple[str, str]],
    body: bytes,
) -> Message:
    """The request message of one HTTP call: body first, then path variables, then the query."""
    message = route.request_class()
    if route.body and body.strip():
        document = parse_json_object(body)
        if route.body == "*":
            merge_json(message, document)
        else:
            target = getattr(message, route.body)
            field = message.DESCRIPTOR.fields_by_name[route.body]
            if field.message_type is not None and not isinstance(document, list):
                merge_json(target, document, prefix=field.json_name)
            else:
                merge_json(message, {field.json_name: document})
    for path, value in path_values.items():
        if _NUL in value:
            target = resolve_field(route.method.input_type, path)
            raise InvalidField(target.json_path if target else path, _NUL_REASON)
        set_field(message, path, value)
    query = list(query)
    for key, value in query:
        if _NUL in value:
            raise InvalidField(key, _NUL_REASON)
    apply_query(message, query, bound=route.bound)
    for proto_path, json_path in route.json_text_fields:
        _check_json_text(message, proto_path, json_path)
    return message


def _check_json_text(message: Message, proto_path: str, json_path: str) -> None:
    """A string field declared to hold a JSON object holds one (or nothing): 400 naming it otherwise."""
    value: Any = message
    for part in proto_path.split("."):
        value = getattr(value, part)
    if not value.strip():
        return
    try:
        document = json.loads(value)
    except ValueError:
        raise InvalidField(json_path, "must be valid JSON") from None
    except RecursionError:
        document = _TOO_DEEP
    if document is _TOO_DEEP or _nested_deeper(document, MAX_JSON_DEPTH):
        raise InvalidField(json_path, f"nests deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(document, dict):
        raise InvalidField(json_path, "must be a JSON object")


def to_json(message: Message) -> Any:
    """Proto3 JSON of a message, camelCase, printing fields without presence.

    Exactly ``MessageToDict(message, always_print_fields_with_no_presence=True)``, by a printer compiled
    once per message type (gateway/jsonprint.py).
    """
    return message_to_dict(message)


def response_payload(route: Route, message: Message) -> Any:
    """The JSON of the response, narrowed by ``response_body`` when the rule has one.

    A response message without fields (a delete's reply) is ``null``, as in ``{"data": null}``, not an
    empty object: the contract's clients read it so.
    """
    if not message.DESCRIPTOR.fields:
        return None
    if route.response_body:
        field = message.DESCRIPTOR.fields_by_name[route.response_body]
        whole = to_json(message)
        return whole.get(field.json_name)
    return to_json(message)


def envelope(route: Route, payload: Any, request_id: str) -> Any:
    """Wrap a payload in the route's envelope (bare, ``{data}``, or ``{data, requestId}``)."""
    if route.envelope == options_pb2.ENVELOPE_DATA_REQUEST_ID:
        return {"data": payload, "requestId": request_id}
    if route.envelope == options_pb2.ENVELOPE_DATA:
        return {"data": payload}
    return payload
