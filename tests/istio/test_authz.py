"""The AuthorizationPolicy evaluator follows Istio's semantics, case by case."""

from __future__ import annotations

from typing import Any

import pytest

from tests.istio.authz import Request, Unsupported, decide, value_matches

NS = "wealist"
GATEWAY = "cluster.local/ns/wealist/sa/gateway"
BOARD = "cluster.local/ns/wealist/sa/board"


def policy(spec: dict[str, Any], *, name: str = "p", namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def allow(*rules: dict[str, Any], app: str | None = "auth") -> dict[str, Any]:
    spec: dict[str, Any] = {"action": "ALLOW", "rules": list(rules)}
    if app is not None:
        spec["selector"] = {"matchLabels": {"app": app}}
    return policy(spec)


def request(principal: str | None = GATEWAY, path: str = "/a.B/C", **kwargs: Any) -> Request:
    return Request(namespace=NS, labels={"app": "auth"}, principal=principal, path=path, port=8080, **kwargs)


def from_to(principals: list[str], paths: list[str]) -> dict[str, Any]:
    return {"from": [{"source": {"principals": principals}}], "to": [{"operation": {"paths": paths}}]}


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("/a.B/C", "/a.B/C", True),
        ("/a.B/C", "/a.B/CD", False),
        ("/a.B/*", "/a.B/C", True),
        ("/a.B/*", "/a.X/C", False),
        ("*/C", "/a.B/C", True),
        ("*", "anything", True),
        ("*", "", False),
        ("*", None, False),
        ("cluster.local/ns/wealist/sa/*", GATEWAY, True),
        ("cluster.local/ns/wealist/sa/*", "cluster.local/ns/other/sa/gateway", False),
    ],
)
def test_values_match_exactly_or_by_prefix_or_suffix(pattern: str, value: str | None, expected: bool) -> None:
    assert value_matches(pattern, value) is expected


def test_no_policy_allows() -> None:
    assert decide([], request()).allowed


def test_an_allow_policy_without_rules_denies_everything() -> None:
    assert not decide([policy({})], request()).allowed


def test_an_allow_policy_for_another_workload_does_not_apply() -> None:
    assert decide([allow(from_to([BOARD], ["/x"]), app="user")], request()).allowed


def test_a_policy_of_another_namespace_does_not_apply() -> None:
    assert decide([policy({}, namespace="other")], request()).allowed


def test_one_matching_rule_of_any_allow_policy_allows() -> None:
    policies = [policy({}), allow(from_to([BOARD], ["/x"])), allow(from_to([GATEWAY], ["/a.B/C"]))]
    assert decide(policies, request()).allowed
    assert not decide(policies, request(path="/a.B/D")).allowed


def test_deny_wins_over_allow() -> None:
    deny = policy({"action": "DENY", "rules": [from_to([GATEWAY], ["/a.B/*"])]})
    assert not decide([allow(from_to([GATEWAY], ["/a.B/C"])), deny], request()).allowed


def test_sources_are_ored_and_fields_of_one_source_anded() -> None:
    rule = {
        "from": [
            {"source": {"principals": [BOARD]}},
            {"source": {"principals": [GATEWAY], "requestPrincipals": ["iss/*"]}},
        ]
    }
    assert decide([allow(rule)], request(BOARD)).allowed
    assert not decide([allow(rule)], request(GATEWAY)).allowed
    assert decide([allow(rule)], request(GATEWAY, request_principal="iss/u1")).allowed


def test_from_to_and_when_are_anded() -> None:
    rule = {
        **from_to([GATEWAY], ["/a.B/C"]),
        "when": [{"key": "request.auth.claims[type]", "values": ["access"]}],
    }
    with_access = request(request_principal="iss/u1", claims={"type": "access"})
    with_refresh = request(request_principal="iss/u1", claims={"type": "refresh"})
    assert decide([allow(rule)], with_access).allowed
    assert not decide([allow(rule)], with_refresh).allowed
    assert not decide([allow(rule)], request()).allowed


def test_not_fields_match_when_no_value_does() -> None:
    rule = {"to": [{"operation": {"notPaths": ["/a.B/*"], "ports": ["8080"]}}]}
    assert not decide([allow(rule)], request()).allowed
    assert decide([allow(rule)], request(path="/c.D/E")).allowed


def test_operations_match_ports_and_methods() -> None:
    rule = {"to": [{"operation": {"ports": ["8081"], "methods": ["POST"]}}]}
    assert not decide([allow(rule)], request()).allowed


def test_a_request_without_a_peer_certificate_matches_no_principal() -> None:
    rule = {"from": [{"source": {"principals": ["*"]}}]}
    assert not decide([allow(rule)], request(None)).allowed
    assert decide([allow({"to": [{"operation": {"paths": ["*"]}}]})], request(None)).allowed


def test_strict_mtls_refuses_a_client_without_a_certificate_before_any_policy() -> None:
    strict = {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": NS},
        "spec": {"mtls": {"mode": "STRICT"}},
    }
    assert not decide([strict], request(None)).allowed
    assert decide([strict], request()).allowed


def test_namespaces_come_from_the_principal() -> None:
    rule = {"from": [{"source": {"namespaces": ["wealist"]}}]}
    assert decide([allow(rule)], request()).allowed
    assert not decide([allow(rule)], request("cluster.local/ns/other/sa/gateway")).allowed


@pytest.mark.parametrize(
    "rule",
    [
        {"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]},
        {"to": [{"operation": {"hosts": ["a"]}}]},
        {"when": [{"key": "source.ip", "values": ["1.2.3.4"]}]},
        {"frm": []},
    ],
)
def test_what_is_not_modelled_is_refused_not_ignored(rule: dict[str, Any]) -> None:
    with pytest.raises(Unsupported):
        decide([allow(rule)], request())
