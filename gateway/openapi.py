"""The OpenAPI 3.1 document of the REST surface, generated from the gateway's route table.

What the gateway routes is what this documents, because it reads the same table (gateway/routing.py)
and the router's own parse of each path template (``PathTemplate.parts``): one operation per route,
that is per ``google.api.http`` binding of every method the ``gateway`` workload may call, under the
service's mount prefix (gateway/mounts.py). Request and response schemas follow the proto3 JSON mapping
(camelCase or explicit ``json_name``, 64-bit integers as strings, well-known types by their JSON forms);
success bodies are wrapped in the envelope the route resolved; errors share one schema; security comes
from the method's access option.

Descriptors loaded from generated ``_pb2`` modules carry no source comments. ``proto_comments`` reads
them from ``FileDescriptorProto``\\ s compiled with source info (``protoc --include_source_info``);
the gateway passes those of the platform (``platform_comments``, from the set ``nox -s proto`` writes
beside the generated code), so each operation's summary and description are its method's comment.
Without comments, summaries are the method names; nothing is made up.

Path parameters are named as clients name the fields (``{boardId}``); what the services accept beyond
a field's type (``wealist.mesh.v1.field``: a UUID, lengths, a closed set of values) and the
``X-Workspace-Id`` header a method reads are declared, so SDKs and fuzzers build valid requests.

The output is deterministic (paths, components and tags sorted; parameters in template then field
order), so the gateway computes it once at start and can serve and cache it as is (``render_openapi``).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, ServiceDescriptor
from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    EnumDescriptorProto,
    FileDescriptorProto,
    FileDescriptorSet,
)
from wealist.mesh.v1 import options_pb2

from gateway.mounts import MOUNT_PREFIXES
from gateway.query import resolve_field
from gateway.routing import Route, build_routes, field_rules
from gateway.template import Literal, Variable, Wildcard
from mesh import UserAuth

Schema = dict[str, Any]
# (full proto name, source_code_info path) pairs.
_Named = list[tuple[str, tuple[int, ...]]]

OPENAPI_VERSION = "3.1.0"

_SCHEMAS = "#/components/schemas/"
_RESPONSES = "#/components/responses/"
ERROR_SCHEMA = "Error"
BEARER_SCHEME = "bearerAuth"
STREAM_AUTH_SCHEME = "tokenQuery"

# The methods an OpenAPI path item can hold; a custom HTTP verb outside them cannot be documented.
_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# Error responses every operation may answer, by HTTP status: (component name, what causes it).
# The causes are the gRPC codes the gateway maps to each status (gateway/errors.py).
_ERRORS: dict[str, tuple[str, str]] = {
    "400": (
        "BadRequest",
        "INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE: the request cannot be served as sent; "
        "`field` names the failing request field when one is at fault.",
    ),
    "401": ("Unauthorized", "UNAUTHENTICATED: the access token is missing, invalid, expired or revoked."),
    "403": ("Forbidden", "PERMISSION_DENIED: the caller may not do this."),
    "404": ("NotFound", "NOT_FOUND: the resource does not exist."),
    "409": ("Conflict", "ALREADY_EXISTS or ABORTED: the request conflicts with the current state."),
    "429": ("TooManyRequests", "RESOURCE_EXHAUSTED: a quota or rate limit was hit."),
    "500": ("InternalError", "INTERNAL, UNKNOWN or DATA_LOSS: the service failed."),
    "503": ("Unavailable", "UNAVAILABLE: the service cannot be reached right now."),
}

# Scalar field types by their proto3 JSON forms.
_SCALARS: dict[int, Schema] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "uint32", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "uint32", "minimum": 0},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
}

# Map keys are JSON object keys (strings); these say which strings a non-string key type allows.
_MAP_KEY_PATTERNS: dict[int, str] = {
    **dict.fromkeys(
        (
            FieldDescriptor.TYPE_INT64,
            FieldDescriptor.TYPE_SINT64,
            FieldDescriptor.TYPE_SFIXED64,
            FieldDescriptor.TYPE_INT32,
            FieldDescriptor.TYPE_SINT32,
            FieldDescriptor.TYPE_SFIXED32,
        ),
        "^-?[0-9]+$",
    ),
    **dict.fromkeys(
        (
            FieldDescriptor.TYPE_UINT64,
            FieldDescriptor.TYPE_FIXED64,
            FieldDescriptor.TYPE_UINT32,
            FieldDescriptor.TYPE_FIXED32,
        ),
        "^[0-9]+$",
    ),
    FieldDescriptor.TYPE_BOOL: "^(true|false)$",
}


def _nullable(schema: Schema) -> Schema:
    return {**schema, "type": [schema["type"], "null"]}


# Well-known types have special JSON forms; they are inlined rather than referenced.
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
    },
    "google.protobuf.DoubleValue": _nullable(_SCALARS[FieldDescriptor.TYPE_DOUBLE]),
    "google.protobuf.FloatValue": _nullable(_SCALARS[FieldDescriptor.TYPE_FLOAT]),
    "google.protobuf.Int64Value": _nullable(_SCALARS[FieldDescriptor.TYPE_INT64]),
    "google.protobuf.UInt64Value": _nullable(_SCALARS[FieldDescriptor.TYPE_UINT64]),
    "google.protobuf.Int32Value": _nullable(_SCALARS[FieldDescriptor.TYPE_INT32]),
    "google.protobuf.UInt32Value": _nullable(_SCALARS[FieldDescriptor.TYPE_UINT32]),
    "google.protobuf.BoolValue": _nullable(_SCALARS[FieldDescriptor.TYPE_BOOL]),
    "google.protobuf.StringValue": _nullable(_SCALARS[FieldDescriptor.TYPE_STRING]),
    "google.protobuf.BytesValue": _nullable(_SCALARS[FieldDescriptor.TYPE_BYTES]),
}

# Well-known messages whose JSON form is one string or number, so they can sit in a path or query.
_SCALAR_WELL_KNOWN = frozenset(
    name for name, schema in _WELL_KNOWN.items() if schema.get("type") not in (None, "object", "array")
)

_NULL_VALUE = "google.protobuf.NullValue"


def wrap_envelope(schema: Schema, envelope: int) -> Schema:
    """The schema of a success body: the response's schema in the declared ``wealist.mesh.v1.Envelope``.

    ``ENVELOPE_BARE`` (and unspecified) is the message itself; ``ENVELOPE_DATA`` is ``{data}``;
    ``ENVELOPE_DATA_REQUEST_ID`` adds the request id the gateway answered with.
    """
    if envelope == options_pb2.ENVELOPE_DATA_REQUEST_ID:
        return {
            "type": "object",
            "properties": {"data": schema, "requestId": {"type": "string"}},
            "required": ["data", "requestId"],
        }
    if envelope == options_pb2.ENVELOPE_DATA:
        return {"type": "object", "properties": {"data": schema}, "required": ["data"]}
    return schema


def error_schema() -> Schema:
    """The one error envelope every service answers with: ``{"error": {code, message, field?}}``."""
    return {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "Machine-readable reason: google.rpc.ErrorInfo's reason, "
                        "else the gRPC status name.",
                    },
                    "message": {"type": "string"},
                    "field": {"type": "string", "description": "The request field at fault, if any."},
                },
                "required": ["code", "message"],
            }
        },
        "required": ["error"],
    }


def build_openapi(
    services: Iterable[ServiceDescriptor],
    *,
    title: str = "weAlist API",
    version: str = "1",
    prefixes: Sequence[str] = MOUNT_PREFIXES,
    comments: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the gateway's REST routes for ``services`` (see ``openapi_document``).

    Raises ValueError for a declaration that cannot be served: a gateway-callable service without a
    workload, an http rule naming an unknown field, two operations on one path and method.
    """
    return openapi_document(
        build_routes(services), title=title, version=version, prefixes=prefixes, comments=comments
    )


def openapi_document(
    routes: Iterable[Route],
    *,
    title: str = "weAlist API",
    version: str = "1",
    prefixes: Sequence[str] = MOUNT_PREFIXES,
    comments: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a route table.

    ``prefixes`` are the mounts the gateway serves each service's canonical paths under, as
    ``<prefix>/<workload>``: the first is the one written into the paths, the others are documented as
    aliases. ``comments`` maps full proto names (``wealist.auth.v1.AuthService.RefreshToken``,
    ``wealist.user.v1.User.email``) to their source comments; see ``proto_comments``.

    Raises ValueError when two routes would be one operation (the same path and method).
    """
    if not prefixes:
        raise ValueError("at least one mount prefix is needed")
    for prefix in prefixes:
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"mount prefix {prefix!r} must start with '/' and not end with one")
    chosen = list(routes)
    services = {
        route.method.containing_service.full_name: route.method.containing_service for route in chosen
    }
    short_names = [service.name for service in services.values()]
    # operationIds and tags use the short service name unless two packages share it.
    labels = {
        name: service.name if short_names.count(service.name) == 1 else name.replace(".", "_")
        for name, service in services.items()
    }
    builder = _Builder(prefixes[0], comments or {})
    for route in chosen:
        builder.add_route(route, labels[route.method.containing_service.full_name])
    return builder.document(title=title, version=version, prefixes=prefixes)


def render_openapi(document: Mapping[str, Any]) -> bytes:
    """The document as compact UTF-8 JSON, byte-for-byte stable for one input (ETag- and cache-friendly)."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def proto_comments(files: Iterable[FileDescriptorProto]) -> dict[str, str]:
    """Source comments by full proto name, from files compiled with ``--include_source_info``.

    Services, methods (``pkg.Service.Method``), messages, fields (``pkg.Message.field``), enums and
    enum values (``pkg.Enum.VALUE``) are keyed; leading comments win over trailing ones.
    """
    found: dict[str, str] = {}
    for file in files:
        located: dict[tuple[int, ...], str] = {}
        for location in file.source_code_info.location:
            text = _clean_comment(location.leading_comments or location.trailing_comments)
            if text:
                located[tuple(location.path)] = text
        # (full name, source path) of every commented element; FileDescriptorProto numbers its
        # message_type 4, enum_type 5 and service 6; a service's method is 2.
        named: _Named = []
        for i, message in enumerate(file.message_type):
            named += _message_paths(message, (4, i), file.package)
        for i, enum in enumerate(file.enum_type):
            named += _enum_paths(enum, (5, i), file.package)
        for i, service in enumerate(file.service):
            full = _qualified(file.package, service.name)
            named.append((full, (6, i)))
            named += [(f"{full}.{m.name}", (6, i, 2, j)) for j, m in enumerate(service.method)]
        found.update((name, located[path]) for name, path in named if path in located)
    return found


@functools.cache
def platform_comments() -> Mapping[str, str]:
    """The source comments of the platform's proto files (``wealist/source_info.binpb``, written by
    ``nox -s proto`` beside the generated code); empty when that file is absent.
    """
    source = resources.files("wealist") / "source_info.binpb"
    if not source.is_file():
        return {}
    return proto_comments(FileDescriptorSet.FromString(source.read_bytes()).file)


def _qualified(scope: str, name: str) -> str:
    return f"{scope}.{name}" if scope else name


def _enum_paths(enum: EnumDescriptorProto, path: tuple[int, ...], scope: str) -> _Named:
    full = _qualified(scope, enum.name)
    return [(full, path)] + [(f"{full}.{v.name}", (*path, 2, i)) for i, v in enumerate(enum.value)]


def _message_paths(message: DescriptorProto, path: tuple[int, ...], scope: str) -> _Named:
    """A message's own path, its fields' (2), and recursively its nested messages' (3) and enums' (4)."""
    full = _qualified(scope, message.name)
    named = [(full, path)] + [(f"{full}.{f.name}", (*path, 2, i)) for i, f in enumerate(message.field)]
    for i, nested in enumerate(message.nested_type):
        named += _message_paths(nested, (*path, 3, i), full)
    for i, enum in enumerate(message.enum_type):
        named += _enum_paths(enum, (*path, 4, i), full)
    return named


def _clean_comment(text: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in text.splitlines()]
    return "\n".join(line.rstrip() for line in lines).strip()


def _summary(comment: str) -> str:
    """The first sentence of a comment's first paragraph, on one line."""
    paragraph = " ".join(comment.split("\n\n", 1)[0].split())
    match = re.match(r"(.+?[.!?])(\s|$)", paragraph)
    return match.group(1) if match else paragraph


def _field_behaviors(field: FieldDescriptor) -> set[int]:
    return set(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])


def _message_of(field: FieldDescriptor) -> Descriptor:
    if field.message_type is None:
        raise ValueError(f"{field.full_name} is not a message field")
    return field.message_type


def _is_message(field: FieldDescriptor) -> bool:
    return field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP)


def _is_map(field: FieldDescriptor) -> bool:
    return _is_message(field) and bool(_message_of(field).GetOptions().map_entry)


def _path_variables(route: Route) -> list[tuple[Variable | Wildcard, str]]:
    """The template's variables and anonymous wildcards with their OpenAPI parameter names.

    A variable is named as clients name its field, in proto3 JSON (``boardId`` for ``{board_id}``).
    """
    found: list[tuple[Variable | Wildcard, str]] = []
    anonymous = 0
    for part in route.template.parts:
        if isinstance(part, Variable):
            target = resolve_field(route.method.input_type, part.field_path)
            assert target is not None  # routing refused a template naming no field
            found.append((part, target.json_path))
        elif isinstance(part, Wildcard):
            anonymous += 1
            found.append((part, f"_wildcard{anonymous}"))
    return found


# String formats by wealist.mesh.v1.StringFormat, as JSON Schema names them.
_FORMATS = {
    options_pb2.STRING_FORMAT_UUID: "uuid",
    options_pb2.STRING_FORMAT_EMAIL: "email",
    options_pb2.STRING_FORMAT_URI: "uri",
}


def _with_rules(schema: Schema, field: FieldDescriptor) -> Schema:
    """A string's schema with the format, lengths and closed set its ``wealist.mesh.v1.field`` declares."""
    if field.type != FieldDescriptor.TYPE_STRING:
        return schema
    rules = field_rules(field)
    if rules.format in _FORMATS:
        schema["format"] = _FORMATS[rules.format]
    elif rules.format == options_pb2.STRING_FORMAT_JSON_OBJECT:
        schema["contentMediaType"] = "application/json"
        schema["contentSchema"] = {"type": "object"}
    if rules.min_length:
        schema["minLength"] = rules.min_length
    if rules.max_length:
        schema["maxLength"] = rules.max_length
    if rules.allowed:
        schema["enum"] = list(rules.allowed)
    return schema


def _with_max_items(schema: Schema, field: FieldDescriptor) -> Schema:
    max_items = field_rules(field).max_items
    if max_items:
        schema["maxItems"] = max_items
    return schema


def _workspace_header(route: Route) -> Schema | None:
    """The X-Workspace-Id header parameter of a route that reads it."""
    if route.workspace_header == options_pb2.WORKSPACE_HEADER_UNSPECIFIED:
        return None
    required = route.workspace_header == options_pb2.WORKSPACE_HEADER_REQUIRED
    return {
        "name": "X-Workspace-Id",
        "in": "header",
        "required": required,
        "schema": {"type": "string", "format": "uuid"},
        "description": "The workspace the call is for: the web client's current one."
        + ("" if required else " Read when sent (see the operation's description)."),
    }


def _openapi_path(route: Route) -> str:
    """A route's template as an OpenAPI path: ``{name=projects/*}`` as ``{name}``, a ``:verb`` kept."""
    names = iter(name for _, name in _path_variables(route))
    segments = [
        part.text if isinstance(part, Literal) else "{" + next(names) + "}" for part in route.template.parts
    ]
    path = "/" + "/".join(segments)
    if route.template.verb is not None:
        path += ":" + route.template.verb
    return path


def _pattern_regex(pattern: str) -> str:
    """A regular expression for the values a variable pattern (``projects/*/boards/**``) matches."""
    regex = ""
    for i, segment in enumerate(pattern.split("/")):
        separator = "/" if i else ""
        if segment == "**":
            regex += f"(?:{separator}.*)?" if i else ".*"
        elif segment == "*":
            regex += separator + "[^/]+"
        else:
            regex += separator + re.escape(segment)
    return f"^{regex}$"


class _Builder:
    """Collects paths, tags and component schemas over the services of one document."""

    def __init__(self, prefix: str, comments: Mapping[str, str]) -> None:
        self.prefix = prefix
        self.comments = comments
        self.paths: dict[str, dict[str, Any]] = {}
        self.schemas: dict[str, Schema] = {}
        self.tags: dict[str, Schema] = {}
        self._proto3_optional: dict[str, frozenset[str]] = {}

    # ----- schemas -------------------------------------------------------------------------------

    def message_schema(self, message: Descriptor) -> Schema:
        """A reference to a message's component (or a well-known type's inline JSON form)."""
        if message.full_name in _WELL_KNOWN:
            return copy.deepcopy(_WELL_KNOWN[message.full_name])
        name = message.full_name
        if name not in self.schemas:
            # The entry exists before its fields are visited, so a recursive type refers to itself.
            schema = self.schemas[name] = {}
            schema.update(self._object_schema(message))
        return {"$ref": _SCHEMAS + name}

    def enum_schema(self, enum: EnumDescriptor) -> Schema:
        if enum.full_name == _NULL_VALUE:
            return {"type": "null"}
        name = enum.full_name
        if name not in self.schemas:
            schema: Schema = {"type": "string", "enum": [value.name for value in enum.values]}
            lines = [self.comments.get(name, "")]
            lines += [
                f"- `{value.name}`: {self.comments[f'{name}.{value.name}']}"
                for value in enum.values
                if f"{name}.{value.name}" in self.comments
            ]
            description = "\n".join(line for line in lines if line).strip()
            if description:
                schema["description"] = description
            self.schemas[name] = schema
        return {"$ref": _SCHEMAS + name}

    def _single_schema(self, field: FieldDescriptor) -> Schema:
        if _is_message(field):
            return self.message_schema(_message_of(field))
        if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
            return self.enum_schema(field.enum_type)
        return _with_rules(dict(_SCALARS[field.type]), field)

    def field_schema(self, field: FieldDescriptor) -> Schema:
        """The JSON schema of one field's value, repeated and map fields included."""
        if _is_map(field):
            entry = _message_of(field)
            schema: Schema = {
                "type": "object",
                "additionalProperties": self._single_schema(entry.fields_by_name["value"]),
            }
            key_pattern = _MAP_KEY_PATTERNS.get(entry.fields_by_name["key"].type)
            if key_pattern:
                schema["propertyNames"] = {"pattern": key_pattern}
            return schema
        if field.is_repeated:
            return _with_max_items({"type": "array", "items": self._single_schema(field)}, field)
        return self._single_schema(field)

    def _proto3_optionals(self, message: Descriptor) -> frozenset[str]:
        """Fields declared ``optional`` in proto3 (their oneofs are synthetic, not real choices)."""
        if message.full_name not in self._proto3_optional:
            proto = DescriptorProto()
            message.CopyToProto(proto)
            self._proto3_optional[message.full_name] = frozenset(
                f.name for f in proto.field if f.proto3_optional
            )
        return self._proto3_optional[message.full_name]

    def _property(self, field: FieldDescriptor) -> Schema:
        schema = self.field_schema(field)
        description = self.comments.get(field.full_name, "")
        oneof = field.containing_oneof
        if oneof is not None and field.name not in self._proto3_optionals(oneof.containing_type):
            others = ", ".join(f"`{f.json_name}`" for f in oneof.fields)
            note = f"One of {others} (oneof `{oneof.name}`): at most one is set."
            description = f"{description}\n\n{note}" if description else note
        if description:
            schema["description"] = description
        behaviors = _field_behaviors(field)
        if field_behavior_pb2.OUTPUT_ONLY in behaviors:
            schema["readOnly"] = True
        if field_behavior_pb2.INPUT_ONLY in behaviors:
            schema["writeOnly"] = True
        if field.GetOptions().deprecated:
            schema["deprecated"] = True
        return schema

    def _object_schema(self, message: Descriptor) -> Schema:
        properties = {field.json_name: self._property(field) for field in message.fields}
        # Proto3 JSON lets any field be left out; only fields marked REQUIRED must be sent.
        required = [
            field.json_name
            for field in message.fields
            if field_behavior_pb2.REQUIRED in _field_behaviors(field)
        ]
        schema: Schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        if message.full_name in self.comments:
            schema["description"] = self.comments[message.full_name]
        return schema

    # ----- operations ----------------------------------------------------------------------------

    def add_route(self, route: Route, label: str) -> None:
        """The operation of one route, and the tag of its service."""
        http_method = route.verb.lower()
        if http_method not in _HTTP_METHODS:
            return  # a custom HTTP verb has no place in an OpenAPI path item
        method = route.method
        where = f"{method.full_name} ({route.verb} {route.template.source})"
        path = f"{self.prefix}/{route.workload}{_openapi_path(route)}"
        suffix = f"_{route.binding_index + 1}" if route.binding_index else ""
        operation: Schema = {"operationId": f"{label}_{method.name}{suffix}", "tags": [label]}
        comment = self.comments.get(method.full_name, "")
        operation["summary"] = _summary(comment) if comment else method.name
        if comment:
            operation["description"] = comment
        if method.GetOptions().deprecated:
            operation["deprecated"] = True
        operation.update(self._inputs(route, http_method, where))
        responses = self._success(route, operation)
        for status, (name, _) in _ERRORS.items():
            if status != "401" or route.user is not UserAuth.REFUSED:
                responses[status] = {"$ref": _RESPONSES + name}
        operation["responses"] = dict(sorted(responses.items()))
        operation["security"] = _security(route.user, streaming=bool(route.stream))
        operation["x-grpc-method"] = route.grpc_path

        item = self.paths.setdefault(path, {})
        if http_method in item:
            other = item[http_method]["x-grpc-method"]
            raise ValueError(f"{where}: {http_method.upper()} {path} is already bound to {other}")
        item[http_method] = operation
        service = method.containing_service
        if label not in self.tags:
            tag: Schema = {"name": label, "x-grpc-service": service.full_name}
            if service.full_name in self.comments:
                tag["description"] = self.comments[service.full_name]
            self.tags[label] = tag

    def _path_parameter(
        self, part: Variable | Wildcard, name: str, request: Descriptor, where: str
    ) -> Schema:
        if isinstance(part, Wildcard):
            what = "any path segment" if part.pattern == "*" else "any rest of the path (may contain '/')"
            return {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": f"Matches {what}; not bound to a request field.",
            }
        target = resolve_field(request, part.field_path)
        assert target is not None  # routing refused a template naming no field
        field = target.descriptor
        if _is_message(field) and _message_of(field).full_name not in _SCALAR_WELL_KNOWN:
            raise ValueError(f"{where}: path variable {part.field_path!r} is not a scalar field")
        schema = self.field_schema(field)
        if isinstance(schema.get("type"), list):
            schema = {**schema, "type": schema["type"][0]}  # a path value is never null
        parameter: Schema = {"name": name, "in": "path", "required": True, "schema": schema}
        description = self.comments.get(field.full_name, "")
        if part.pattern != "*":
            if schema.get("type") == "string":
                schema["pattern"] = _pattern_regex(part.pattern)
            note = f"Matches `{part.pattern}`: the value spans path segments, '/' included."
            description = f"{description}\n\n{note}" if description else note
        if description:
            parameter["description"] = description
        return parameter

    def _query_parameters(
        self,
        message: Descriptor,
        bound: set[str],
        proto_prefix: str = "",
        json_prefix: str = "",
        seen: tuple[str, ...] = (),
    ) -> list[Schema]:
        """Query parameters for the fields neither the path nor the body carries (dotted when nested)."""
        if message.full_name in _WELL_KNOWN:
            return []
        parameters: list[Schema] = []
        for field in message.fields:
            proto_path = proto_prefix + field.name
            json_path = json_prefix + field.json_name
            if proto_path in bound or _is_map(field):
                continue
            nested = _message_of(field) if _is_message(field) else None
            if nested is not None and nested.full_name not in _SCALAR_WELL_KNOWN:
                # A singular message spreads into dotted parameters; a list of objects, a free-form
                # value or a type already being expanded has no query form.
                if not field.is_repeated and nested.full_name not in (*_WELL_KNOWN, *seen, message.full_name):
                    parameters += self._query_parameters(
                        nested, bound, f"{proto_path}.", f"{json_path}.", (*seen, message.full_name)
                    )
                continue
            parameters.append(self._query_parameter(field, json_path))
        return parameters

    def _query_parameter(self, field: FieldDescriptor, name: str) -> Schema:
        """One scalar (or repeated scalar) query parameter."""
        schema = self._single_schema(field)
        if isinstance(schema.get("type"), list):
            schema["type"] = schema["type"][0]  # a wrapper's null is simply leaving the parameter out
        parameter: Schema = {"name": name, "in": "query", "schema": schema}
        if field.is_repeated:
            array = _with_max_items({"type": "array", "items": schema}, field)
            parameter.update(schema=array, style="form", explode=True)
        if field.full_name in self.comments:
            parameter["description"] = self.comments[field.full_name]
        if field_behavior_pb2.REQUIRED in _field_behaviors(field):
            parameter["required"] = True
        if field.GetOptions().deprecated:
            parameter["deprecated"] = True
        return parameter

    def _request_body(self, request: Descriptor, body: str, bound: set[str]) -> Schema:
        if body == "*":
            schema = self.message_schema(request)
            top_bound = {request.fields_by_name[p].json_name for p in bound if "." not in p}
            if top_bound and "$ref" in schema:
                # Fields the path carries are not part of the body.
                full = self.schemas[request.full_name]
                schema = {
                    "type": "object",
                    "properties": {k: v for k, v in full["properties"].items() if k not in top_bound},
                }
                required = [name for name in full.get("required", []) if name not in top_bound]
                if required:
                    schema["required"] = required
        else:
            field = request.fields_by_name[body]
            schema = self.field_schema(field)
            if field.full_name in self.comments:
                schema["description"] = self.comments[field.full_name]
        return {"content": {"application/json": {"schema": schema}}}

    def _payload_schema(self, route: Route) -> Schema:
        response = route.method.output_type
        if route.response_body:
            return self.field_schema(response.fields_by_name[route.response_body])
        if not response.fields:
            return {"type": "null"}  # a reply that carries nothing is printed as null (transcode)
        return self.message_schema(response)

    def _inputs(self, route: Route, http_method: str, where: str) -> Schema:
        """``parameters`` and ``requestBody`` of an operation: path variables, then body or query.

        A WebSocket's first request message (and, when the client streams, the base of every frame's
        message) comes from the path and the query, as a GET's does.
        """
        request = route.method.input_type
        parameters = [
            self._path_parameter(part, name, request, where) for part, name in _path_variables(route)
        ]
        bound = set(route.template.variables)
        found: Schema = {}
        if route.body and http_method != "get":
            found["requestBody"] = self._request_body(request, route.body, bound)
            if route.body != "*":
                parameters += self._query_parameters(request, {*bound, route.body})
        else:
            parameters += self._query_parameters(request, bound)
        header = _workspace_header(route)
        if header is not None:
            parameters.append(header)
        if parameters:
            found["parameters"] = parameters
        return found

    def _success(self, route: Route, operation: Schema) -> dict[str, Schema]:
        """The success response(s) of a route; streams also describe their messages on ``operation``."""
        payload = self._payload_schema(route)
        if route.stream == options_pb2.STREAM_TRANSPORT_WEBSOCKET:
            socket: Schema = {"serverToClient": payload}
            if route.client_streaming:
                socket["clientToServer"] = self.message_schema(route.method.input_type)
            operation["x-websocket"] = socket
            return {
                "101": {
                    "description": "Switching Protocols: the connection becomes a WebSocket carrying the "
                    "messages `x-websocket` describes, one JSON message per text frame."
                },
                "426": {
                    "description": "Upgrade Required: a plain HTTP request (no WebSocket upgrade).",
                    "content": {"application/json": {"schema": {"$ref": _SCHEMAS + ERROR_SCHEMA}}},
                },
            }
        if route.stream == options_pb2.STREAM_TRANSPORT_SSE:
            event = route.sse_event
            operation["x-sse"] = {"event": event, "data": payload}
            return {
                "200": {
                    "description": f"A server-sent event stream: each `{event}` event's data is one "
                    "response message as JSON (`x-sse`).",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                }
            }
        if route.redirect_field:
            location = {"required": True, "schema": {"type": "string", "format": "uri-reference"}}
            return {
                "302": {
                    "description": f"A redirect to the response's `{route.redirect_field}`.",
                    "headers": {"Location": location},
                }
            }
        status = str(route.success_status)
        success: Schema = {"description": "Success."}
        if status != "204":
            success["content"] = {"application/json": {"schema": wrap_envelope(payload, route.envelope)}}
        return {status: success}

    # ----- the document --------------------------------------------------------------------------

    def document(self, *, title: str, version: str, prefixes: Sequence[str]) -> dict[str, Any]:
        lines = [
            f"Every service's routes are served under `{prefixes[0]}/<workload>` (the paths below).",
        ]
        for alias in prefixes[1:]:
            lines.append(f"The same routes answer under `{alias}/<workload>` as well.")
        lines += [
            "",
            "Bodies are proto3 JSON (camelCase field names; 64-bit integers as strings). Errors answer "
            '`{"error": {"code", "message", "field"}}`. Operations that act for a user take an '
            "access token as `Authorization: Bearer <token>`; streams (WebSocket, server-sent events) "
            "also take it as `?token=`.",
        ]
        schemas = {**self.schemas, ERROR_SCHEMA: error_schema()}
        method_order = {name: i for i, name in enumerate(_HTTP_METHODS)}
        paths = {
            path: dict(sorted(item.items(), key=lambda kv: method_order[kv[0]]))
            for path, item in sorted(self.paths.items())
        }
        return {
            "openapi": OPENAPI_VERSION,
            "info": {"title": title, "version": version, "description": "\n".join(lines)},
            "tags": [self.tags[name] for name in sorted(self.tags)],
            "paths": paths,
            "components": {
                "schemas": dict(sorted(schemas.items())),
                "responses": {
                    name: {
                        "description": cause,
                        "content": {"application/json": {"schema": {"$ref": _SCHEMAS + ERROR_SCHEMA}}},
                    }
                    for name, cause in sorted(_ERRORS.values())
                },
                "securitySchemes": {
                    BEARER_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                    STREAM_AUTH_SCHEME: {
                        "type": "apiKey",
                        "in": "query",
                        "name": "token",
                        "description": "The access token as a query parameter, for WebSocket and "
                        "server-sent-event streams (browsers cannot set headers on them).",
                    },
                },
            },
        }


def _security(user: UserAuth, *, streaming: bool) -> list[dict[str, list[str]]]:
    if user is UserAuth.REFUSED:
        return []
    schemes: list[dict[str, list[str]]] = [{BEARER_SCHEME: []}]
    if streaming:
        schemes.append({STREAM_AUTH_SCHEME: []})
    if user is UserAuth.OPTIONAL:
        schemes.append({})
    return schemes
