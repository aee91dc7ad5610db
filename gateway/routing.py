"""The route table: every ``google.api.http`` binding of every method the gateway may call.

Built once at start from the descriptors; nothing here is written per route by hand. A method the
gateway is not a caller of (an internal one) gets no route, whatever its options say, and neither does
a streaming method without a declared transport (SSE or WebSocket). The router (gateway/template.py),
the transcoder and the OpenAPI document (gateway/openapi.py) all read this table, so what is documented
is what is served. A declaration that cannot be served raises ``ValueError`` here, at start.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from wealist.mesh.v1 import options_pb2

from gateway.mounts import GATEWAY_WORKLOAD
from gateway.query import resolve_field
from gateway.template import PathTemplate
from mesh import MethodAccess, UserAuth, method_access, method_path, workload_of


@dataclass(frozen=True, slots=True)
class Binding:
    """One HTTP binding of a method: verb, path template, body and response body selectors."""

    verb: str
    pattern: str
    body: str
    response_body: str


@dataclass(frozen=True, slots=True)
class Route:
    """What the gateway needs to serve one binding, resolved once."""

    verb: str
    template: PathTemplate
    workload: str
    grpc_path: str
    method: MethodDescriptor
    request_class: type[Message]
    response_class: type[Message]
    body: str
    response_body: str
    envelope: int
    success_status: int
    redirect_field: str
    stream: int
    sse_event: str
    user: UserAuth
    # The method restores a deleted account, so that account's token may still reach it.
    closed_account_allowed: bool
    # Request fields set from the path or the whole/partial body: the query may not override them.
    bound: frozenset[str]
    access: MethodAccess
    # 0 for the method's primary rule, 1.. for its additional_bindings in order.
    binding_index: int = 0
    workspace_header: int = options_pb2.WORKSPACE_HEADER_UNSPECIFIED
    # (proto path, JSON path) of the request's string fields declared STRING_FORMAT_JSON_OBJECT, which
    # the gateway checks at the edge (see wealist.mesh.v1.StringFormat).
    json_text_fields: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        """The route's name in metrics: workload and path template (bounded cardinality)."""
        return f"/{self.workload}{self.template.source}"

    @property
    def client_streaming(self) -> bool:
        return bool(self.method.client_streaming)

    @property
    def server_streaming(self) -> bool:
        return bool(self.method.server_streaming)


def bindings(method: MethodDescriptor) -> Iterator[Binding]:
    """The primary ``google.api.http`` rule of a method and its ``additional_bindings``."""
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return
    rule = options.Extensions[annotations_pb2.http]
    for each in (rule, *rule.additional_bindings):
        yield _binding(each)


def _binding(rule: http_pb2.HttpRule) -> Binding:
    kind = rule.WhichOneof("pattern")
    if kind is None:
        raise ValueError("an HttpRule without a pattern")
    if kind == "custom":
        return Binding(rule.custom.kind.upper(), rule.custom.path, rule.body, rule.response_body)
    return Binding(kind.upper(), getattr(rule, kind), rule.body, rule.response_body)


def build_routes(services: Iterable[ServiceDescriptor]) -> list[Route]:
    """Every route of the given services that the gateway may call."""
    routes = []
    for service in services:
        service_rest = service.GetOptions().Extensions[options_pb2.service]
        for method in service.methods_by_name.values():
            access = method_access(method)
            if GATEWAY_WORKLOAD not in access.callers:
                continue
            rest = method.GetOptions().Extensions[options_pb2.rest]
            if (method.client_streaming or method.server_streaming) and not rest.stream:
                continue  # a stream is offered only over the transport its method declares
            workload = workload_of(service)
            if not workload:
                raise ValueError(f"{service.full_name} has gateway methods but no workload option")
            envelope = rest.envelope or service_rest.envelope or options_pb2.ENVELOPE_BARE
            for index, binding in enumerate(bindings(method)):
                routes.append(
                    _route(method, binding, index, workload=workload, access=access, envelope=envelope)
                )
    return routes


def _route(
    method: MethodDescriptor,
    binding: Binding,
    index: int,
    *,
    workload: str,
    access: MethodAccess,
    envelope: int,
) -> Route:
    where = f"{method_path(method)} ({binding.verb} {binding.pattern})"
    rest = method.GetOptions().Extensions[options_pb2.rest]
    template = PathTemplate.parse(binding.pattern)
    request, response = method.input_type, method.output_type
    for variable in template.variables:
        target = resolve_field(request, variable)
        if target is None:
            raise ValueError(f"{where}: {request.full_name} has no field {variable!r}")
        if target.error or target.descriptor.is_repeated:
            raise ValueError(f"{where}: path variable {variable!r} names no settable scalar field")
    if binding.body not in ("", "*") and binding.body not in request.fields_by_name:
        raise ValueError(f"{where}: body {binding.body!r} is no field of {request.full_name}")
    if binding.response_body and binding.response_body not in response.fields_by_name:
        raise ValueError(
            f"{where}: response_body {binding.response_body!r} is no field of {response.full_name}"
        )
    if rest.redirect_field and rest.redirect_field not in response.fields_by_name:
        raise ValueError(f"{where}: redirect_field {rest.redirect_field!r} is not a response field")
    bound = set(template.variables)
    if binding.body == "*":
        bound |= {field.name for field in request.fields}
    elif binding.body:
        bound.add(binding.body)
    return Route(
        # A WebSocket is opened by a GET, whatever verb the rule names.
        verb="GET" if rest.stream == options_pb2.STREAM_TRANSPORT_WEBSOCKET else binding.verb,
        template=template,
        workload=workload,
        grpc_path=method_path(method),
        method=method,
        request_class=GetMessageClass(request),
        response_class=GetMessageClass(response),
        body=binding.body,
        response_body=binding.response_body,
        envelope=envelope,
        success_status=rest.success_status or 200,
        redirect_field=rest.redirect_field,
        stream=rest.stream,
        sse_event=rest.sse_event or "message",
        user=access.user,
        closed_account_allowed=access.closed_account_allowed,
        bound=frozenset(bound),
        access=access,
        binding_index=index,
        workspace_header=rest.workspace_header,
        json_text_fields=tuple(_json_text_fields(request)),
    )


def field_rules(field: FieldDescriptor) -> options_pb2.FieldRules:
    """The ``wealist.mesh.v1.field`` rules of a field (empty when it declares none)."""
    return field.GetOptions().Extensions[options_pb2.field]


def _json_text_fields(
    message: Descriptor, proto_prefix: str = "", json_prefix: str = "", seen: frozenset[str] = frozenset()
) -> Iterator[tuple[str, str]]:
    """Singular string fields declared to hold a JSON object, through singular message fields."""
    for field in message.fields:
        if field.is_repeated:
            continue
        if field.message_type is not None:
            if field.message_type.full_name not in seen:
                yield from _json_text_fields(
                    field.message_type,
                    f"{proto_prefix}{field.name}.",
                    f"{json_prefix}{field.json_name}.",
                    seen | {message.full_name},
                )
        elif field_rules(field).format == options_pb2.STRING_FORMAT_JSON_OBJECT:
            yield f"{proto_prefix}{field.name}", f"{json_prefix}{field.json_name}"
