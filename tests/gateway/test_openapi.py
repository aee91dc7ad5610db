"""The OpenAPI document and the docs page, from the platform's descriptors and from a synthetic service.

The synthetic file (built here as a FileDescriptorProto and added to the default pool, so the mesh and
google.api options resolve) gives the generator every shape the platform does not have yet: each
scalar and well-known type, maps, oneofs, recursion, path templates with patterns, wildcards and verbs,
body selectors, the three envelopes, redirects, SSE and WebSocket streams, and methods that must stay out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api import annotations_pb2, field_behavior_pb2
from google.protobuf import (
    any_pb2,
    descriptor_pool,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    json_format,
    message_factory,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor
from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    FieldDescriptorProto,
    FileDescriptorProto,
    FileDescriptorSet,
    MethodDescriptorProto,
)
from grpc_tools import protoc
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from wealist.auth.v1 import auth_pb2
from wealist.mesh.v1 import options_pb2
from wealist.user.v1 import user_pb2

from gateway.docs import ASSET_FILES, assets_directory, docs_html
from gateway.openapi import (
    build_openapi,
    openapi_document,
    platform_comments,
    proto_comments,
    render_openapi,
    wrap_envelope,
)
from gateway.routing import build_routes
from mesh import all_services
from tools.protogen import PROTO_ROOT, _googleapis_root, proto_files

F = FieldDescriptorProto
PACKAGE = "openapitest.v1"
SCHEMAS = "#/components/schemas/"
# Importing these registers the files the synthetic one depends on in the default pool.
_DEPENDENCIES = (
    annotations_pb2,
    field_behavior_pb2,
    options_pb2,
    any_pb2,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)


# ----- the synthetic file ---------------------------------------------------------------------------


def _field(
    message: DescriptorProto,
    name: str,
    number: int,
    kind: int,
    type_name: str = "",
    *,
    repeated: bool = False,
    **extra: Any,
) -> FieldDescriptorProto:
    field = message.field.add(name=name, number=number, type=kind, **extra)
    field.label = F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL
    if type_name:
        field.type_name = type_name if type_name.startswith(".") else f".{PACKAGE}.{type_name}"
    return field


def _map(message: DescriptorProto, name: str, number: int, key: int, value: int) -> None:
    entry_name = "".join(part.title() for part in name.split("_")) + "Entry"
    entry = message.nested_type.add(name=entry_name)
    entry.options.map_entry = True
    _field(entry, "key", 1, key)
    _field(entry, "value", 2, value)
    _field(message, name, number, F.TYPE_MESSAGE, f"{message.name}.{entry_name}", repeated=True)


def _sample(file: FileDescriptorProto) -> None:
    message = file.message_type.add(name="Sample")
    message.oneof_decl.add(name="choice")
    message.oneof_decl.add(name="_nick")  # synthetic oneofs (proto3 optional) come after real ones
    _field(message, "big", 1, F.TYPE_INT64)
    _field(message, "ubig", 2, F.TYPE_UINT64)
    _field(message, "small", 3, F.TYPE_INT32)
    _field(message, "ratio", 4, F.TYPE_DOUBLE)
    _field(message, "flag", 5, F.TYPE_BOOL)
    _field(message, "blob", 6, F.TYPE_BYTES)
    _field(message, "kind", 7, F.TYPE_ENUM, "Kind")
    _map(message, "counts", 8, F.TYPE_STRING, F.TYPE_INT64)
    _field(message, "tags", 9, F.TYPE_STRING, repeated=True)
    _field(message, "nick", 10, F.TYPE_STRING, oneof_index=1, proto3_optional=True)
    _field(message, "maybe_count", 11, F.TYPE_MESSAGE, ".google.protobuf.Int32Value")
    _field(message, "maybe_name", 12, F.TYPE_MESSAGE, ".google.protobuf.StringValue")
    _field(message, "at", 13, F.TYPE_MESSAGE, ".google.protobuf.Timestamp")
    _field(message, "took", 14, F.TYPE_MESSAGE, ".google.protobuf.Duration")
    _field(message, "tree", 15, F.TYPE_MESSAGE, "Node")
    _field(message, "extra", 16, F.TYPE_MESSAGE, ".google.protobuf.Struct")
    _field(message, "any_value", 17, F.TYPE_MESSAGE, ".google.protobuf.Value")
    _field(message, "mask", 18, F.TYPE_MESSAGE, ".google.protobuf.FieldMask")
    _field(message, "nothing", 19, F.TYPE_MESSAGE, ".google.protobuf.Empty")
    _field(message, "packed", 20, F.TYPE_MESSAGE, ".google.protobuf.Any")
    _field(message, "by_name", 21, F.TYPE_STRING, oneof_index=0)
    _field(message, "by_number", 22, F.TYPE_INT32, oneof_index=0)
    _field(message, "display_name", 23, F.TYPE_STRING, json_name="display_name")
    _map(message, "by_id", 24, F.TYPE_INT32, F.TYPE_STRING)
    _field(message, "f64", 25, F.TYPE_FIXED64)
    _field(message, "list", 26, F.TYPE_MESSAGE, ".google.protobuf.ListValue")
    must = _field(message, "must", 27, F.TYPE_STRING)
    must.options.Extensions[field_behavior_pb2.field_behavior].append(field_behavior_pb2.REQUIRED)
    server = _field(message, "server_set", 28, F.TYPE_STRING)
    server.options.Extensions[field_behavior_pb2.field_behavior].append(field_behavior_pb2.OUTPUT_ONLY)


def _messages(file: FileDescriptorProto) -> None:
    kind = file.enum_type.add(name="Kind")
    for number, name in enumerate(("KIND_UNSPECIFIED", "KIND_A", "KIND_B")):
        kind.value.add(name=name, number=number)
    node = file.message_type.add(name="Node")
    _field(node, "name", 1, F.TYPE_STRING)
    _field(node, "children", 2, F.TYPE_MESSAGE, "Node", repeated=True)
    _field(node, "parent", 3, F.TYPE_MESSAGE, "Node")
    _sample(file)
    filter_ = file.message_type.add(name="Filter")
    _field(filter_, "owner_id", 1, F.TYPE_STRING)
    _field(filter_, "kinds", 2, F.TYPE_ENUM, "Kind", repeated=True)
    _field(filter_, "inner", 3, F.TYPE_MESSAGE, "Filter")
    get = file.message_type.add(name="GetThingRequest")
    _field(get, "board_id", 1, F.TYPE_STRING)
    _field(get, "filter", 2, F.TYPE_MESSAGE, "Filter")
    _field(get, "ids", 3, F.TYPE_STRING, repeated=True)
    _map(get, "labels", 4, F.TYPE_STRING, F.TYPE_STRING)
    _field(get, "page", 5, F.TYPE_INT64)
    _field(get, "since", 6, F.TYPE_MESSAGE, ".google.protobuf.Timestamp")
    _field(get, "nodes", 7, F.TYPE_MESSAGE, "Node", repeated=True)
    _field(get, "limit", 8, F.TYPE_MESSAGE, ".google.protobuf.Int32Value")
    update = file.message_type.add(name="UpdateThingRequest")
    _field(update, "board_id", 1, F.TYPE_STRING)
    _field(update, "sample", 2, F.TYPE_MESSAGE, "Sample")
    _field(update, "note", 3, F.TYPE_STRING)
    resource = file.message_type.add(name="ResourceRequest")
    _field(resource, "name", 1, F.TYPE_STRING)
    _field(resource, "extra", 2, F.TYPE_STRING)
    stream = file.message_type.add(name="StreamRequest")
    _field(stream, "board_id", 1, F.TYPE_STRING)
    _field(stream, "text", 2, F.TYPE_STRING)
    reply = file.message_type.add(name="Reply")
    _field(reply, "sample", 1, F.TYPE_MESSAGE, "Sample")
    _field(reply, "location", 2, F.TYPE_STRING)


def _method(
    service: Any,
    name: str,
    request: str,
    *,
    http: dict[str, str] | None = None,
    callers: tuple[str, ...] = ("gateway",),
    user: int = options_pb2.USER_AUTH_REQUIRED,
    rest: dict[str, Any] | None = None,
    **shape: bool,
) -> MethodDescriptorProto:
    method: MethodDescriptorProto = service.method.add(
        name=name, input_type=f".{PACKAGE}.{request}", output_type=f".{PACKAGE}.Reply", **shape
    )
    access = method.options.Extensions[options_pb2.access]
    access.callers.extend(callers)
    access.user = user  # type: ignore[assignment]
    if http is not None:
        rule = method.options.Extensions[annotations_pb2.http]
        for key, value in http.items():
            setattr(rule, key, value)
    for key, value in (rest or {}).items():
        setattr(method.options.Extensions[options_pb2.rest], key, value)
    return method


def _synthetic_file() -> FileDescriptorProto:
    file = FileDescriptorProto(name="openapitest/v1/synthetic.proto", package=PACKAGE, syntax="proto3")
    file.dependency.extend(
        [
            "google/api/annotations.proto",
            "google/api/field_behavior.proto",
            "wealist/mesh/v1/options.proto",
            "google/protobuf/any.proto",
            "google/protobuf/duration.proto",
            "google/protobuf/empty.proto",
            "google/protobuf/field_mask.proto",
            "google/protobuf/struct.proto",
            "google/protobuf/timestamp.proto",
            "google/protobuf/wrappers.proto",
        ]
    )
    _messages(file)
    service = file.service.add(name="ThingService")
    service.options.Extensions[options_pb2.service].workload = "things"
    service.options.Extensions[options_pb2.service].envelope = options_pb2.ENVELOPE_DATA_REQUEST_ID
    get = _method(service, "GetThing", "GetThingRequest", http={"get": "/api/things/{board_id}"})
    get.options.Extensions[annotations_pb2.http].additional_bindings.add(get="/api/v2/things/{board_id}")
    _method(
        service,
        "UpdateThing",
        "UpdateThingRequest",
        http={"patch": "/api/things/{board_id}", "body": "sample", "response_body": "sample"},
        user=options_pb2.USER_AUTH_OPTIONAL,
        rest={"envelope": options_pb2.ENVELOPE_DATA, "success_status": 201},
    )
    _method(
        service,
        "ReplaceThing",
        "UpdateThingRequest",
        http={"put": "/api/things/{board_id}", "body": "*"},
        user=options_pb2.USER_AUTH_REFUSED,
        rest={"envelope": options_pb2.ENVELOPE_BARE},
    )
    _method(
        service,
        "DeleteThing",
        "GetThingRequest",
        http={"delete": "/api/things/{board_id}"},
        rest={"success_status": 204},
    )
    _method(service, "Inspect", "ResourceRequest", http={"get": "/v1/{name=projects/*/boards/*}:inspect"})
    _method(service, "Files", "ResourceRequest", http={"get": "/files/**"})
    _method(
        service,
        "Go",
        "ResourceRequest",
        http={"get": "/go"},
        user=options_pb2.USER_AUTH_REFUSED,
        rest={"redirect_field": "location"},
    )
    _method(
        service,
        "Events",
        "GetThingRequest",
        http={"get": "/api/things/{board_id}/events"},
        rest={"stream": options_pb2.STREAM_TRANSPORT_SSE, "sse_event": "thing"},
        server_streaming=True,
    )
    _method(
        service,
        "Chat",
        "StreamRequest",
        http={"get": "/ws/things/{board_id}"},
        rest={"stream": options_pb2.STREAM_TRANSPORT_WEBSOCKET},
        client_streaming=True,
        server_streaming=True,
    )
    # None of these may appear: a workload-only method, one without a rule, a stream without transport.
    _method(service, "Internal", "ResourceRequest", http={"get": "/internal"}, callers=("board",))
    _method(service, "NoRest", "ResourceRequest")
    _method(service, "Undeclared", "ResourceRequest", http={"get": "/undeclared"}, server_streaming=True)
    return file


def _add_to_default_pool(file: FileDescriptorProto) -> FileDescriptor:
    pool = descriptor_pool.Default()
    try:
        return pool.FindFileByName(file.name)
    except KeyError:
        pool.AddSerializedFile(file.SerializeToString())
        return pool.FindFileByName(file.name)


@pytest.fixture(scope="module")
def synthetic() -> FileDescriptor:
    return _add_to_default_pool(_synthetic_file())


@pytest.fixture(scope="module")
def synthetic_doc(synthetic: FileDescriptor) -> dict[str, Any]:
    return build_openapi([synthetic.services_by_name["ThingService"]], title="t", version="0")


@pytest.fixture(scope="module")
def platform_doc() -> dict[str, Any]:
    return build_openapi(list(all_services()))


# ----- helpers --------------------------------------------------------------------------------------


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def _schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = doc["components"]["schemas"][name]
    return schema


def _success_schema(operation: dict[str, Any], status: str = "200") -> Any:
    return operation["responses"][status]["content"]["application/json"]["schema"]


def _params(operation: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["in"], p["name"]): p for p in operation.get("parameters", [])}


def _validate_json(doc: dict[str, Any], schema_name: str, instance: Any) -> None:
    """Validate an instance against a component schema, with the document's components in scope."""
    root = {"$ref": SCHEMAS + schema_name, "components": doc["components"]}
    OAS31Validator(root).validate(instance)


# ----- the platform's document ----------------------------------------------------------------------


def test_platform_document_is_valid_openapi_31(platform_doc: dict[str, Any]) -> None:
    assert platform_doc["openapi"].startswith("3.1.")
    validate(platform_doc, cls=OpenAPIV31SpecValidator)


def test_every_ref_resolves(platform_doc: dict[str, Any], synthetic_doc: dict[str, Any]) -> None:
    for doc in (platform_doc, synthetic_doc):
        refs = set(_refs(doc))
        assert refs
        for ref in refs:
            assert _resolve(doc, ref) is not None, ref


def test_refresh_token_operation(platform_doc: dict[str, Any]) -> None:
    operation = platform_doc["paths"]["/api/svc/auth/api/auth/refresh"]["post"]
    assert operation["operationId"] == "AuthService_RefreshToken"
    assert operation["tags"] == ["AuthService"]
    assert operation["summary"] == "RefreshToken"  # the generated descriptors carry no comments
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": SCHEMAS + "wealist.auth.v1.RefreshTokenRequest"}
    # auth answers bare JSON: the 200 is the response message itself.
    assert _success_schema(operation) == {"$ref": SCHEMAS + "wealist.auth.v1.RefreshTokenResponse"}
    assert operation["security"] == []
    assert "401" not in operation["responses"]
    response = _schema(platform_doc, "wealist.auth.v1.RefreshTokenResponse")
    assert set(response["properties"]) == {"accessToken", "refreshToken", "userId"}


def test_my_user_operation(platform_doc: dict[str, Any]) -> None:
    operation = platform_doc["paths"]["/api/svc/user/api/users/me"]["get"]
    assert operation["operationId"] == "UserService_GetMyUser"
    assert operation["security"] == [{"bearerAuth": []}]
    assert operation["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}
    # response_body "user": the body is the User, not GetMyUserResponse.
    assert _success_schema(operation) == {"$ref": SCHEMAS + "wealist.user.v1.User"}
    assert "requestBody" not in operation
    schemes = platform_doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def test_google_login_is_a_redirect(platform_doc: dict[str, Any]) -> None:
    operation = platform_doc["paths"]["/api/svc/auth/oauth2/authorization/google"]["get"]
    assert "200" not in operation["responses"]
    redirect = operation["responses"]["302"]
    assert redirect["headers"]["Location"]["schema"]["type"] == "string"
    assert redirect["headers"]["Location"]["required"] is True
    names = {p["name"] for p in operation["parameters"]}
    assert names == {"redirectUri", "loginHint"}


def test_internal_methods_are_not_exposed(platform_doc: dict[str, Any]) -> None:
    grpc_methods = {op["x-grpc-method"] for _, _, op in _operations(platform_doc)}
    operation_ids = {op["operationId"] for _, _, op in _operations(platform_doc)}
    for name in ("ValidateToken", "FindOrCreateOAuthUser", "CheckUserExists"):
        assert not any(m.endswith("/" + name) for m in grpc_methods), name
        assert not any(i.endswith("_" + name) for i in operation_ids), name
    assert "wealist.user.v1.FindOrCreateOAuthUserRequest" not in platform_doc["components"]["schemas"]


def test_every_gateway_route_is_documented(platform_doc: dict[str, Any]) -> None:
    """What the gateway routes (gateway.routing) and what the document lists are the same set."""
    routed = {(route.grpc_path, route.verb.lower()) for route in build_routes(all_services())}
    documented = {(op["x-grpc-method"], method) for _, method, op in _operations(platform_doc)}
    assert documented == routed


def test_platform_schemas_follow_proto3_json(platform_doc: dict[str, Any]) -> None:
    openid = _schema(platform_doc, "wealist.auth.v1.GetOpenidConfigurationResponse")["properties"]
    assert "jwks_uri" in openid  # the explicit json_name
    assert openid["response_types_supported"] == {"type": "array", "items": {"type": "string"}}
    user = _schema(platform_doc, "wealist.user.v1.User")
    assert user["properties"]["createdAt"] == {"type": "string", "format": "date-time"}
    assert user["properties"]["googleId"] == {"type": "string"}
    assert "required" not in user  # proto3 optional, and no field marked REQUIRED
    jwks = _schema(platform_doc, "wealist.auth.v1.GetJwksResponse")
    assert jwks["properties"]["keys"]["items"] == {"$ref": SCHEMAS + "wealist.auth.v1.JsonWebKey"}


def test_platform_responses_validate_against_their_schemas(platform_doc: dict[str, Any]) -> None:
    user = user_pb2.User(user_id="u1", email="a@b.c", name="A", google_id="g", is_active=True)
    user.created_at.FromSeconds(1_700_000_000)
    printed = json_format.MessageToDict(user, always_print_fields_with_no_presence=True)
    _validate_json(platform_doc, "wealist.user.v1.User", printed)
    config = auth_pb2.GetOpenidConfigurationResponse(jwks_uri="https://x/jwks", scopes_supported=["openid"])
    printed = json_format.MessageToDict(config, always_print_fields_with_no_presence=True)
    assert "jwks_uri" in printed
    _validate_json(platform_doc, "wealist.auth.v1.GetOpenidConfigurationResponse", printed)


def test_document_names_the_alias_prefix(platform_doc: dict[str, Any]) -> None:
    description = platform_doc["info"]["description"]
    assert "/api/svc/<workload>" in description
    assert "/svc/<workload>" in description
    assert all(path.startswith("/api/svc/") for path in platform_doc["paths"])
    assert not any(path.startswith("/svc/") for path in platform_doc["paths"])


def test_output_is_deterministic() -> None:
    services = list(all_services())
    first = render_openapi(build_openapi(services))
    again = render_openapi(build_openapi(list(reversed(services))))
    assert first == again
    doc = json.loads(first)
    assert list(doc["paths"]) == sorted(doc["paths"])
    assert list(doc["components"]["schemas"]) == sorted(doc["components"]["schemas"])


def test_unauthorized_only_where_a_user_token_counts(platform_doc: dict[str, Any]) -> None:
    for _, _, operation in _operations(platform_doc):
        has_401 = "401" in operation["responses"]
        assert has_401 == (operation["security"] != []), operation["operationId"]
        for status in ("400", "403", "404", "409", "429", "500", "503"):
            assert operation["responses"][status]["$ref"].startswith("#/components/responses/")
    error = _schema(platform_doc, "Error")
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]
    assert set(error["properties"]["error"]["properties"]) == {"code", "message", "field"}


def test_comments_from_source_info(tmp_path: Path) -> None:
    """With a descriptor set compiled with source info, summaries and descriptions come from the proto."""
    out = tmp_path / "set.binpb"
    well_known = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"-I{_googleapis_root()}",
        "--include_source_info",
        f"--descriptor_set_out={out}",
        *(str(p) for p in proto_files()),
    ]
    assert protoc.main(args) == 0
    comments = proto_comments(FileDescriptorSet.FromString(out.read_bytes()).file)
    doc = build_openapi(list(all_services()), comments=comments)
    operation = doc["paths"]["/api/svc/auth/api/auth/refresh"]["post"]
    assert (
        operation["summary"]
        == "Trades a refresh token for a new pair; the presented refresh token is revoked (rotation)."
    )
    assert operation["description"].startswith("Trades a refresh token")
    logout = _schema(doc, "wealist.auth.v1.LogoutRequest")
    assert logout["properties"]["refreshToken"]["description"].startswith("Optional: revoked together")
    assert _schema(doc, "wealist.user.v1.User")["description"].startswith("A user account")
    assert comments["wealist.mesh.v1.UserAuth.USER_AUTH_REQUIRED"].startswith("A valid access token")
    validate(doc, cls=OpenAPIV31SpecValidator)


# ----- type mapping on the synthetic message --------------------------------------------------------


def test_scalar_and_well_known_mapping(synthetic_doc: dict[str, Any]) -> None:
    props = _schema(synthetic_doc, f"{PACKAGE}.Sample")["properties"]
    assert props["big"] == {"type": "string", "format": "int64"}
    assert props["ubig"] == {"type": "string", "format": "uint64"}
    assert props["f64"] == {"type": "string", "format": "uint64"}
    assert props["small"] == {"type": "integer", "format": "int32"}
    assert props["ratio"] == {"type": "number", "format": "double"}
    assert props["flag"] == {"type": "boolean"}
    assert props["blob"]["type"] == "string"
    assert props["blob"]["format"] == "byte"
    assert props["kind"] == {"$ref": f"{SCHEMAS}{PACKAGE}.Kind"}
    kind = _schema(synthetic_doc, f"{PACKAGE}.Kind")
    assert kind == {"type": "string", "enum": ["KIND_UNSPECIFIED", "KIND_A", "KIND_B"]}
    assert props["counts"] == {
        "type": "object",
        "additionalProperties": {"type": "string", "format": "int64"},
    }
    assert props["byId"]["additionalProperties"] == {"type": "string"}
    assert props["byId"]["propertyNames"] == {"pattern": "^-?[0-9]+$"}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["nick"] == {"type": "string"}  # proto3 optional: plain, not a oneof, not required
    assert props["maybeCount"] == {"type": ["integer", "null"], "format": "int32"}
    assert props["maybeName"] == {"type": ["string", "null"]}
    assert props["at"] == {"type": "string", "format": "date-time"}
    assert props["took"]["type"] == "string"
    assert re.fullmatch(props["took"]["pattern"], "1.500s")
    assert props["extra"] == {"type": "object"}
    assert props["anyValue"] == {}
    assert props["list"] == {"type": "array"}
    assert props["mask"] == {"type": "string"}
    assert props["nothing"] == {"type": "object"}
    assert props["packed"]["properties"] == {"@type": {"type": "string"}}
    assert props["display_name"] == {"type": "string"}
    assert "displayName" not in props
    assert "(oneof `choice`)" in props["byName"]["description"]
    assert props["serverSet"]["readOnly"] is True
    assert _schema(synthetic_doc, f"{PACKAGE}.Sample")["required"] == ["must"]


def test_recursive_messages_are_references(synthetic_doc: dict[str, Any]) -> None:
    node = _schema(synthetic_doc, f"{PACKAGE}.Node")
    assert node["properties"]["parent"] == {"$ref": f"{SCHEMAS}{PACKAGE}.Node"}
    assert node["properties"]["children"] == {"type": "array", "items": {"$ref": f"{SCHEMAS}{PACKAGE}.Node"}}
    assert _schema(synthetic_doc, f"{PACKAGE}.Sample")["properties"]["tree"] == {
        "$ref": f"{SCHEMAS}{PACKAGE}.Node"
    }


def test_printed_json_validates_against_the_schema(
    synthetic: FileDescriptor, synthetic_doc: dict[str, Any]
) -> None:
    """What json_format prints for a full message is an instance of the generated schema."""
    sample_class: Any = message_factory.GetMessageClass(synthetic.message_types_by_name["Sample"])
    sample: Any = sample_class(
        big=-(2**40),
        ubig=2**63,
        small=-3,
        ratio=0.5,
        flag=True,
        blob=b"\x00\xff",
        kind=1,
        tags=["a"],
        nick="n",
    )
    sample.counts["x"] = 2**50
    sample.by_id[7] = "seven"
    sample.maybe_count.value = 0
    sample.maybe_name.value = "m"
    sample.at.FromSeconds(1_700_000_000)
    sample.took.FromMilliseconds(1500)
    sample.tree.name = "root"
    sample.tree.children.add(name="leaf").parent.name = "root"
    sample.extra.update({"a": [1, "b", None]})
    sample.any_value.string_value = "v"
    sample.list.values.add().number_value = 1
    sample.mask.paths.append("display_name")
    sample.nothing.SetInParent()
    sample.packed.Pack(timestamp_pb2.Timestamp(seconds=1))
    sample.by_number = 4
    sample.display_name = "D"
    sample.f64 = 2**64 - 1
    sample.must = "m"
    printed = json_format.MessageToDict(sample, always_print_fields_with_no_presence=True)
    assert isinstance(printed["big"], str)
    _validate_json(synthetic_doc, f"{PACKAGE}.Sample", printed)
    empty = json_format.MessageToDict(sample_class(), always_print_fields_with_no_presence=True)
    _validate_json(synthetic_doc, f"{PACKAGE}.Sample", {**empty, "must": ""})


# ----- operations of the synthetic service ----------------------------------------------------------


def test_synthetic_document_is_valid(synthetic_doc: dict[str, Any]) -> None:
    validate(synthetic_doc, cls=OpenAPIV31SpecValidator)


def test_only_gateway_methods_with_rules_and_transports(synthetic_doc: dict[str, Any]) -> None:
    ids = {op["operationId"] for _, _, op in _operations(synthetic_doc)}
    assert ids == {
        "ThingService_GetThing",
        "ThingService_GetThing_2",
        "ThingService_UpdateThing",
        "ThingService_ReplaceThing",
        "ThingService_DeleteThing",
        "ThingService_Inspect",
        "ThingService_Files",
        "ThingService_Go",
        "ThingService_Events",
        "ThingService_Chat",
    }
    assert synthetic_doc["tags"] == [{"name": "ThingService", "x-grpc-service": f"{PACKAGE}.ThingService"}]


def test_get_with_query_parameters(synthetic_doc: dict[str, Any]) -> None:
    operation = synthetic_doc["paths"]["/api/svc/things/api/things/{boardId}"]["get"]
    params = _params(operation)
    assert params["path", "boardId"] == {
        "name": "boardId",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    query = {name for where, name in params if where == "query"}
    # Nested singular messages spread into dotted names (stopping at recursion); maps and lists of
    # messages have no query form.
    assert query == {"filter.ownerId", "filter.kinds", "ids", "page", "since", "limit"}
    kinds = params["query", "filter.kinds"]
    assert kinds["schema"] == {"type": "array", "items": {"$ref": f"{SCHEMAS}{PACKAGE}.Kind"}}
    assert (kinds["style"], kinds["explode"]) == ("form", True)
    assert params["query", "page"]["schema"] == {"type": "string", "format": "int64"}
    assert params["query", "since"]["schema"] == {"type": "string", "format": "date-time"}
    assert params["query", "limit"]["schema"] == {"type": "integer", "format": "int32"}
    assert "requestBody" not in operation
    additional = synthetic_doc["paths"]["/api/svc/things/api/v2/things/{boardId}"]["get"]
    assert additional["x-grpc-method"] == operation["x-grpc-method"] == f"/{PACKAGE}.ThingService/GetThing"


def test_envelopes(synthetic_doc: dict[str, Any]) -> None:
    things = synthetic_doc["paths"]["/api/svc/things/api/things/{boardId}"]
    reply = {"$ref": f"{SCHEMAS}{PACKAGE}.Reply"}
    sample = {"$ref": f"{SCHEMAS}{PACKAGE}.Sample"}
    # The service's ENVELOPE_DATA_REQUEST_ID.
    assert _success_schema(things["get"]) == {
        "type": "object",
        "properties": {"data": reply, "requestId": {"type": "string"}},
        "required": ["data", "requestId"],
    }
    # The method's ENVELOPE_DATA, a 201, around the response_body field.
    assert _success_schema(things["patch"], "201") == {
        "type": "object",
        "properties": {"data": sample},
        "required": ["data"],
    }
    assert "200" not in things["patch"]["responses"]
    # The method's ENVELOPE_BARE.
    assert _success_schema(things["put"]) == reply
    # 204: no content.
    assert "content" not in things["delete"]["responses"]["204"]


def test_wrap_envelope_directly() -> None:
    payload = {"$ref": "#/x"}
    assert wrap_envelope(payload, options_pb2.ENVELOPE_BARE) == payload
    assert wrap_envelope(payload, options_pb2.ENVELOPE_UNSPECIFIED) == payload
    assert wrap_envelope(payload, options_pb2.ENVELOPE_DATA)["properties"] == {"data": payload}
    assert wrap_envelope(payload, options_pb2.ENVELOPE_DATA_REQUEST_ID)["required"] == ["data", "requestId"]


def test_bodies(synthetic_doc: dict[str, Any]) -> None:
    things = synthetic_doc["paths"]["/api/svc/things/api/things/{boardId}"]
    patch = things["patch"]
    assert patch["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": f"{SCHEMAS}{PACKAGE}.Sample"
    }
    assert {name for where, name in _params(patch) if where == "query"} == {"note"}
    put = things["put"]
    body = put["requestBody"]["content"]["application/json"]["schema"]
    assert body["type"] == "object"
    assert set(body["properties"]) == {"sample", "note"}  # board_id travels in the path
    assert {name for where, name in _params(put) if where == "query"} == set()


def test_security_by_user_auth(synthetic_doc: dict[str, Any]) -> None:
    things = synthetic_doc["paths"]["/api/svc/things/api/things/{boardId}"]
    assert things["get"]["security"] == [{"bearerAuth": []}]
    assert things["patch"]["security"] == [{"bearerAuth": []}, {}]
    assert "401" in things["patch"]["responses"]
    assert things["put"]["security"] == []
    assert "401" not in things["put"]["responses"]


def test_path_templates(synthetic_doc: dict[str, Any]) -> None:
    inspect = synthetic_doc["paths"]["/api/svc/things/v1/{name}:inspect"]["get"]
    name = _params(inspect)["path", "name"]
    assert name["required"] is True
    assert "projects/*/boards/*" in name["description"]
    assert re.match(name["schema"]["pattern"], "projects/p1/boards/b2")
    assert not re.match(name["schema"]["pattern"], "projects/p1")
    assert {n for where, n in _params(inspect) if where == "query"} == {"extra"}
    files = synthetic_doc["paths"]["/api/svc/things/files/{_wildcard1}"]["get"]
    wildcard = _params(files)["path", "_wildcard1"]
    assert "not bound to a request field" in wildcard["description"]
    assert {n for where, n in _params(files) if where == "query"} == {"name", "extra"}


def test_redirect(synthetic_doc: dict[str, Any]) -> None:
    go = synthetic_doc["paths"]["/api/svc/things/go"]["get"]
    assert set(go["responses"]) - {"400", "403", "404", "409", "429", "500", "503"} == {"302"}
    assert "Location" in go["responses"]["302"]["headers"]


def test_streams(synthetic_doc: dict[str, Any]) -> None:
    events = synthetic_doc["paths"]["/api/svc/things/api/things/{boardId}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    assert events["x-sse"] == {"event": "thing", "data": {"$ref": f"{SCHEMAS}{PACKAGE}.Reply"}}
    assert events["security"] == [{"bearerAuth": []}, {"tokenQuery": []}]
    chat = synthetic_doc["paths"]["/api/svc/things/ws/things/{boardId}"]["get"]
    assert "101" in chat["responses"]
    assert "200" not in chat["responses"]
    assert chat["x-websocket"] == {
        "serverToClient": {"$ref": f"{SCHEMAS}{PACKAGE}.Reply"},
        "clientToServer": {"$ref": f"{SCHEMAS}{PACKAGE}.StreamRequest"},
    }
    assert {n for where, n in _params(chat) if where == "query"} == {"text"}
    token = synthetic_doc["components"]["securitySchemes"]["tokenQuery"]
    assert (token["type"], token["in"], token["name"]) == ("apiKey", "query", "token")


def _single_service_file(name: str, workload: str, paths: list[str]) -> ServiceDescriptor:
    file = FileDescriptorProto(name=f"openapitest/v1/{name.lower()}.proto", package=PACKAGE, syntax="proto3")
    file.dependency.extend(
        ["google/api/annotations.proto", "wealist/mesh/v1/options.proto", "openapitest/v1/synthetic.proto"]
    )
    service = file.service.add(name=name)
    service.options.Extensions[options_pb2.service].workload = workload
    for i, path in enumerate(paths):
        _method(service, f"M{i}", "ResourceRequest", http={"get": path})
    return _add_to_default_pool(file).services_by_name[name]


def test_bad_declarations_are_errors(synthetic: FileDescriptor) -> None:
    clash = _single_service_file("ClashService", "clash", ["/a/{name}", "/a/{name}"])
    with pytest.raises(ValueError, match="already bound"):
        build_openapi([clash])
    nowhere = _single_service_file("NowhereService", "", ["/b"])
    with pytest.raises(ValueError, match="no workload"):
        build_openapi([nowhere])
    unknown = _single_service_file("UnknownFieldService", "unknown", ["/c/{missing}"])
    with pytest.raises(ValueError, match="no field 'missing'"):
        build_openapi([unknown])


# ----- the docs page ------------------------------------------------------------------------------


def test_docs_page_uses_local_assets() -> None:
    page = docs_html("/openapi.json", "/docs/assets/")
    assert '"/openapi.json"' in page
    referenced = re.findall(r'(?:src|href)="/docs/assets/([^"]+)"', page)
    assert set(referenced) == set(ASSET_FILES)
    directory = assets_directory()
    for name in referenced:
        assert (directory / name).is_file(), name
    assert "swagger-ui-bundle.js" in referenced
    assert "swagger-ui.css" in referenced
    assert "http://" not in page
    assert "https://" not in page


def test_docs_page_escapes_its_inputs() -> None:
    page = docs_html('/x"</script><script>alert(1)//', '/a"b', title="<T>")
    assert "</script><script>alert" not in page
    assert 'href="/a&quot;b/swagger-ui.css"' in page
    assert "<title>&lt;T&gt;</title>" in page


def test_swagger_ui_in_the_assets_renders_openapi_31() -> None:
    """The bundled Swagger UI is a 5.x build, which knows OpenAPI 3.1 (4.x refuses such documents)."""
    bundle = (assets_directory() / "swagger-ui-bundle.js").read_text(encoding="utf-8")
    assert "isOAS31" in bundle


# ----- what the gateway serves: comments, headers, the services' rules --------------------------------


@pytest.fixture(scope="module")
def served_doc() -> dict[str, Any]:
    """The document the gateway serves: the route table with the platform's proto comments."""
    return openapi_document(build_routes(all_services()), comments=platform_comments())


def test_every_served_operation_has_its_proto_comment(served_doc: dict[str, Any]) -> None:
    validate(served_doc, cls=OpenAPIV31SpecValidator)
    comments = platform_comments()
    operations = list(_operations(served_doc))
    assert len(operations) >= 90
    for path, method, operation in operations:
        grpc_method = operation["x-grpc-method"].lstrip("/").replace("/", ".")
        assert operation["description"] == comments[grpc_method], (path, method)
    refresh = served_doc["paths"]["/api/svc/auth/api/auth/refresh"]["post"]
    assert refresh["summary"].startswith("Trades a refresh token for a new pair")


def test_path_parameters_are_named_as_clients_name_the_fields(served_doc: dict[str, Any]) -> None:
    names = set()
    for path, _, operation in _operations(served_doc):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                names.add(parameter["name"])
                assert "_" not in parameter["name"], (path, parameter["name"])
                assert "{" + parameter["name"] + "}" in path
    assert {"boardId", "projectId", "workspaceId", "userId", "notificationId"} <= names


def test_the_workspace_header_is_declared_where_it_is_read(served_doc: dict[str, Any]) -> None:
    def header(path: str, method: str) -> dict[str, Any] | None:
        operation = served_doc["paths"][path][method]
        found = [p for p in operation.get("parameters", []) if p["in"] == "header"]
        return found[0] if found else None

    required = header("/api/svc/user/api/profiles/me", "get")
    assert required is not None
    assert (required["name"], required["required"]) == ("X-Workspace-Id", True)
    assert required["schema"] == {"type": "string", "format": "uuid"}
    for path, method in (
        ("/api/svc/user/api/profiles/me", "put"),
        ("/api/svc/noti/api/notifications", "get"),
        ("/api/svc/noti/api/notifications/unread-count", "get"),
    ):
        optional = header(path, method)
        assert optional is not None, path
        assert optional["required"] is False, path
    assert header("/api/svc/user/api/users/me", "get") is None
    declared = {
        (path, method)
        for path, method, operation in _operations(served_doc)
        if any(p["in"] == "header" for p in operation.get("parameters", []))
    }
    assert len(declared) == 6


def test_the_services_rules_are_declared(served_doc: dict[str, Any]) -> None:
    board = _params(served_doc["paths"]["/api/svc/board/api/boards/{boardId}"]["get"])
    assert board["path", "boardId"]["schema"] == {"type": "string", "format": "uuid"}
    created = _schema(served_doc, "wealist.board.v1.CreateBoardRequest")["properties"]
    assert created["title"] == {"type": "string", "minLength": 1, "maxLength": 200}
    assert created["participants"] == {
        "type": "array",
        "items": {"type": "string", "format": "uuid"},
        "maxItems": 50,
    }
    upload = _schema(served_doc, "wealist.board.v1.CreatePresignedUploadRequest")["properties"]
    assert upload["entityType"]["enum"] == ["BOARD", "COMMENT", "PROJECT"]
    listed = _params(served_doc["paths"]["/api/svc/board/api/boards/project/{projectId}"]["get"])
    assert listed["query", "customFields"]["schema"]["contentMediaType"] == "application/json"
    invite = _schema(served_doc, "wealist.user.v1.InviteWorkspaceMemberRequest")["properties"]
    assert invite["email"]["format"] == "email"
    # A request built from the schema alone passes the schema (what a fuzzer or SDK relies on).
    _validate_json(
        served_doc,
        "wealist.board.v1.CreateBoardRequest",
        {"projectId": "0b3b1b1e-7c1a-4b5e-9a41-2f0f1b7e6d10", "title": "t", "participants": []},
    )
