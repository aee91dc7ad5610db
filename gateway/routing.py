"""The route table: every ``google.api.http`` binding of every method the gateway may call.

Built once at start from the descriptors; nothing here is written per route by hand. A method the
gateway is not a caller of (an internal one) gets no route, whatever its options say.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from wealist.mesh.v1 import options_pb2

from gateway.query import resolve_field
from gateway.template import PathTemplate
from mesh import UserAuth, method_access, method_path, workload_of

GATEWAY = "gateway"


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
        workload = workload_of(service)
        service_rest = service.GetOptions().Extensions[options_pb2.service]
        for method in service.methods_by_name.values():
            access = method_access(method)
            if GATEWAY not in access.callers:
                continue
            rest = method.GetOptions().Extensions[options_pb2.rest]
            request_class = GetMessageClass(method.input_type)
            for binding in bindings(method):
                template = PathTemplate.parse(binding.pattern)
                for variable in template.variables:
                    target = resolve_field(method.input_type, variable)
                    if target is None or target.error or target.descriptor.is_repeated:
                        raise ValueError(
                            f"{method_path(method)}: path variable {variable!r} names no settable field"
                        )
                bound = set(template.variables)
                if binding.body == "*":
                    bound |= {field.name for field in method.input_type.fields}
                elif binding.body:
                    bound.add(binding.body)
                routes.append(
                    Route(
                        verb=binding.verb,
                        template=template,
                        workload=workload,
                        grpc_path=method_path(method),
                        method=method,
                        request_class=request_class,
                        response_class=GetMessageClass(method.output_type),
                        body=binding.body,
                        response_body=binding.response_body,
                        envelope=rest.envelope or service_rest.envelope or options_pb2.ENVELOPE_BARE,
                        success_status=rest.success_status or 200,
                        redirect_field=rest.redirect_field,
                        stream=rest.stream,
                        sse_event=rest.sse_event or "message",
                        user=access.user,
                        closed_account_allowed=access.closed_account_allowed,
                        bound=frozenset(bound),
                    )
                )
    return routes
