"""The compiler: access options → rules, streams → routes, idempotency → retries, code → workloads."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from google.protobuf.descriptor import ServiceDescriptor

from gateway.routing import build_routes
from gateway.template import PathTemplate
from mesh import (
    DEBUG_WORKLOAD,
    WORKLOADS,
    MethodAccess,
    UserAuth,
    all_services,
    method_access,
    workload_of,
)
from tests.support.echo import compile_echo, import_echo
from tools.manifests import (
    S3_CREDENTIALS,
    SAFE_RETRY_ON,
    code_workloads,
    http_route,
    mesh_config,
    retry_paths,
    settings_class,
    stream_matches,
    virtual_service,
)
from tools.policy import (
    HEALTH_PATHS,
    REFLECTION_PATHS,
    Layout,
    allowed_workloads,
    authorization_policies,
    grpc_port,
    grpc_workloads,
    jwks_path,
    metrics_port,
    request_authentications,
)

LAYOUT = Layout()
Rule = dict[str, Any]


def policies(layout: Layout = LAYOUT) -> dict[str, dict[str, Any]]:
    return {d.body["metadata"]["name"]: d.body for d in authorization_policies(all_services(), layout)}


def rules_of(workload: str) -> list[Rule]:
    rules: list[Rule] = policies()[workload]["spec"]["rules"]
    return rules


def paths(rule: Rule) -> list[str]:
    found: list[str] = rule["to"][0]["operation"]["paths"]
    return found


def principals(rule: Rule) -> list[str]:
    found: list[str] = rule["from"][0]["source"]["principals"]
    return found


def all_methods() -> Iterator[tuple[str, MethodAccess]]:
    for service in all_services():
        for method in service.methods_by_name.values():
            yield workload_of(service), method_access(method)


def test_every_method_sits_in_exactly_one_rule_naming_exactly_its_allowed_callers() -> None:
    for workload, access in all_methods():
        holding = [r for r in rules_of(workload) if access.path in paths(r)]
        assert len(holding) == 1, access.path
        rule = holding[0]
        expected = sorted(LAYOUT.principal(w) for w in allowed_workloads(access))
        assert sorted(principals(rule)) == expected, access.path
        assert rule["to"][0]["operation"]["ports"] == [str(grpc_port(workload))]
        assert rule["to"][0]["operation"]["methods"] == ["POST"]
        needs_user = access.user is UserAuth.REQUIRED
        assert ("requestPrincipals" in rule["from"][0]["source"]) is needs_user, access.path
        assert ("when" in rule) is needs_user


def test_debug_reaches_exactly_the_methods_without_side_effects() -> None:
    debug = LAYOUT.principal(DEBUG_WORKLOAD)
    for workload, access in all_methods():
        rule = next(r for r in rules_of(workload) if access.path in paths(r))
        assert (debug in principals(rule)) is (access.read_only or DEBUG_WORKLOAD in access.callers)


def test_methods_with_the_same_callers_share_one_rule() -> None:
    for workload, served in grpc_workloads(all_services()).items():
        keys = {
            (allowed_workloads(a), a.user is UserAuth.REQUIRED)
            for a in (method_access(m) for s in served for m in s.methods_by_name.values())
        }
        # The method rules, then health, reflection and metrics.
        assert len(rules_of(workload)) == len(keys) + 3


def test_health_answers_every_workload_of_the_namespace_and_reflection_only_debug() -> None:
    for workload in grpc_workloads(all_services()):
        health = next(r for r in rules_of(workload) if paths(r) == list(HEALTH_PATHS))
        assert principals(health) == ["cluster.local/ns/wealist/sa/*"]
        reflection = next(r for r in rules_of(workload) if paths(r) == list(REFLECTION_PATHS))
        assert principals(reflection) == ["cluster.local/ns/wealist/sa/debug"]


def test_metrics_are_scraped_by_prometheus_only_on_the_metrics_port() -> None:
    layout = Layout(prometheus_principal="cluster.local/ns/obs/sa/prom")
    for workload in grpc_workloads(all_services()):
        rules: list[Rule] = policies(layout)[workload]["spec"]["rules"]
        metrics = [r for r in rules if paths(r) == ["/metrics"]]
        assert len(metrics) == 1
        assert principals(metrics[0]) == ["cluster.local/ns/obs/sa/prom"]
        assert metrics[0]["to"][0]["operation"]["ports"] == [str(metrics_port(workload))]
        assert metrics_port(workload) == grpc_port(workload) + 100


def test_the_namespace_default_allows_nothing() -> None:
    assert policies()["allow-nothing"]["spec"] == {}


def test_the_gateway_admits_the_ingress_proxy_only_on_the_routed_paths() -> None:
    default = policies()["gateway"]["spec"]["rules"][0]
    assert principals(default) == ["cluster.local/ns/wealist/sa/wealist-istio"]
    assert paths(default) == ["/api/svc/*", "/svc/*", "/api/oauth2/*", "/oauth2/*"]
    chosen = policies(Layout(ingress_principal="cluster.local/ns/ingress/sa/gw"))["gateway"]
    assert principals(chosen["spec"]["rules"][0]) == ["cluster.local/ns/ingress/sa/gw"]


def test_a_caller_pattern_is_refused() -> None:
    access = MethodAccess("/a.B/C", frozenset({"*"}), UserAuth.REFUSED, False, False, False, False)
    with pytest.raises(ValueError, match="not a workload name"):
        allowed_workloads(access)


def test_the_jwks_is_read_through_the_gateway_route_of_get_jwks() -> None:
    assert jwks_path(all_services()) == "/svc/auth/.well-known/jwks.json"
    documents = request_authentications(all_services(), LAYOUT)
    assert {d.body["metadata"]["name"] for d in documents} == set(grpc_workloads(all_services()))
    rule = documents[0].body["spec"]["jwtRules"][0]
    assert rule["issuer"] == "wealist-auth-service"
    assert rule["forwardOriginalToken"] is True
    assert rule["jwksUri"].endswith("/svc/auth/.well-known/jwks.json")


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> list[ServiceDescriptor]:
    """The gateway tests' echo service (one SSE and one WebSocket method) beside the platform's."""
    out: Path = tmp_path_factory.mktemp("echo-gen")
    compile_echo(out)
    echo_pb2: ModuleType = import_echo(out)[0]
    return [echo_pb2.DESCRIPTOR.services_by_name["EchoService"]]


def test_stream_routes_come_from_rest_stream(echo: list[ServiceDescriptor]) -> None:
    matches = stream_matches(build_routes(echo))
    assert matches == [
        {"path": {"type": "Exact", "value": "/api/svc/echo/api/ticks"}, "method": "GET"},
        {"path": {"type": "PathPrefix", "value": "/api/svc/echo/ws/rooms"}, "method": "GET"},
        {"path": {"type": "Exact", "value": "/svc/echo/api/ticks"}, "method": "GET"},
        {"path": {"type": "PathPrefix", "value": "/svc/echo/ws/rooms"}, "method": "GET"},
    ]
    rules = http_route([*all_services(), *echo], LAYOUT).body["spec"]["rules"]
    assert rules[0]["name"] == "streams"
    assert all(m in rules[0]["matches"] for m in matches)
    assert rules[0]["timeouts"] == {"request": "0s"}
    assert rules[-1]["timeouts"] == {"request": "65s"}


def test_a_stream_prefix_that_would_cover_a_unary_route_is_refused(echo: list[ServiceDescriptor]) -> None:
    routes = build_routes(echo)
    chat = next(r for r in routes if r.grpc_path.endswith("/Chat"))
    clash = dataclasses.replace(chat, template=PathTemplate.parse("/api/rooms/{room}/live"))
    with pytest.raises(ValueError, match="give the stream a path of its own"):
        stream_matches([*routes, clash])


def test_streams_come_first_and_storage_gets_its_longer_deadline() -> None:
    """Each rule outlasts the longest Grpc-Timeout the gateway accepts for it (60 s, storage 300 s)."""
    rules = http_route(all_services(), LAYOUT).body["spec"]["rules"]
    streaming = stream_matches(build_routes(all_services()))
    names = ["streams", "storage", "default"] if streaming else ["storage", "default"]
    assert [r["name"] for r in rules] == names
    assert rules[-2]["timeouts"] == {"request": "305s"}
    assert rules[-1]["timeouts"] == {"request": "65s"}


def test_only_idempotent_unary_methods_are_retried() -> None:
    for workload, served in grpc_workloads(all_services()).items():
        retried = set(retry_paths(served))
        for service in served:
            for method in service.methods_by_name.values():
                access = method_access(method)
                unary = not (access.client_streaming or access.server_streaming)
                assert (access.path in retried) is (access.idempotent and unary)
        http = virtual_service(workload, served, LAYOUT).body["spec"]["http"]
        assert http[-1]["retries"] == {"attempts": 2, "retryOn": SAFE_RETRY_ON}
        if retried:
            assert {m["uri"]["exact"] for m in http[0]["match"]} == retried


def test_workloads_are_found_from_the_code() -> None:
    found = {w.name: w for w in code_workloads()}
    services = {p.parent.name for p in Path("services").glob("*/__main__.py")}
    assert set(found) == {*services, "gateway"}
    user, auth = found["user"], found["auth"]
    assert user.owns_database
    assert not auth.owns_database
    names = [s.name for s in user.secrets]
    assert names[:2] == ["REDIS_URL", "DATABASE_URL"]
    declared = {f.validation_alias for f in settings_class("services.user").model_fields.values()}
    assert set(names[2:]) == {n for n in S3_CREDENTIALS if n in declared}
    secrets = {s.name: s.optional for s in auth.secrets}
    assert secrets["REDIS_URL"] is False
    # Production refuses to start without it, so the Secret must hold it; the next key is optional.
    assert secrets["AUTH_SIGNING_KEY_PEM"] is False
    assert secrets["AUTH_SIGNING_KEY_NEXT_PEM"] is True
    assert "DATABASE_URL" not in secrets
    assert found["gateway"].module == "gateway"


def test_traces_are_exported_only_where_a_collector_is_named() -> None:
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in mesh_config(Layout())
    named = mesh_config(Layout(otlp_endpoint="http://otel-collector.observability:4317"))
    assert named["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4317"


def test_every_workload_is_given_every_service_address() -> None:
    config = mesh_config(Layout(namespace="prod"))
    for workload in WORKLOADS:
        address = config[f"WEALIST_{workload.upper()}_ADDR"]
        assert address == f"{workload}.prod.svc.cluster.local:{grpc_port(workload)}"
    assert config["WEALIST_ISTIO_MODE"] == "true"
    assert config["WEALIST_NAMESPACE"] == "prod"
