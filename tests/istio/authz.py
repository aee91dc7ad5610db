"""An evaluator of Istio AuthorizationPolicies, for proving the rendered policies mean what the app does.

It follows Istio's documented semantics for one request to one workload:

1. PeerAuthentication STRICT (the workload's own, else the namespace's) refuses a client without mTLS
   before any policy runs;
2. any matching DENY policy denies; then, if any ALLOW policy applies to the workload, the request is
   allowed iff one of their rules matches, else it is allowed. An ALLOW policy without rules (``spec: {}``)
   applies and matches nothing;
3. a policy applies when it is in the workload's namespace and its ``selector.matchLabels`` are a subset
   of the pod's labels (no selector: every workload of the namespace);
4. in a rule, ``from``, ``to`` and ``when`` are ANDed; the entries of ``from`` (and of ``to``) are ORed;
   the fields of one source (or operation) are ANDed; the values of one field are ORed; a ``not*`` field
   matches when none of its values does; an absent field matches anything;
5. a value matches exactly, or as ``prefix*``, ``*suffix``, or ``*`` (any non-empty value); a request
   without a peer identity (or without a JWT) has no principal (or request principal) to match.

What it does not model raises :class:`Unsupported` rather than being skipped, so a policy never looks
more permissive or stricter here than in Istio without the test saying so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SOURCE_FIELDS = {
    "principals": "principal",
    "notPrincipals": "principal",
    "requestPrincipals": "request_principal",
    "notRequestPrincipals": "request_principal",
    "namespaces": "source_namespace",
    "notNamespaces": "source_namespace",
}
OPERATION_FIELDS = {
    "paths": "path",
    "notPaths": "path",
    "ports": "port",
    "notPorts": "port",
    "methods": "method",
    "notMethods": "method",
}
CLAIM_KEY = re.compile(r"^request\.auth\.claims\[([^\]]+)\]$")


class Unsupported(ValueError):
    """A policy uses something this evaluator does not model."""


@dataclass(frozen=True, slots=True)
class Request:
    """One request as a workload's sidecar sees it."""

    namespace: str
    labels: Mapping[str, str]
    # The peer's principal from mTLS ("cluster.local/ns/<ns>/sa/<sa>"); None without a client certificate.
    principal: str | None
    path: str
    port: int
    method: str = "POST"
    # "<iss>/<sub>" of a valid JWT; None without one.
    request_principal: str | None = None
    claims: Mapping[str, str] = field(default_factory=dict)

    @property
    def source_namespace(self) -> str | None:
        """The namespace named by the peer's principal."""
        if self.principal is None:
            return None
        parts = self.principal.split("/")
        return parts[2] if len(parts) >= 5 and parts[1] == "ns" else None


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict, and which policy (and rule) decided it."""

    allowed: bool
    why: str


def value_matches(pattern: str, value: str | None) -> bool:
    """Istio's string match: exact, ``prefix*``, ``*suffix``, or ``*`` for any non-empty value."""
    if value is None or value == "":
        return False
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


def _field(request: Request, name: str) -> str | None:
    value = getattr(request, name)
    return None if value is None else str(value)


def _fields_match(spec: Mapping[str, Any], known: Mapping[str, str], request: Request) -> bool:
    for key, values in spec.items():
        if key not in known:
            raise Unsupported(f"field {key!r} is not modelled")
        if not isinstance(values, list):
            raise Unsupported(f"{key} should be a list, not {values!r}")
        value = _field(request, known[key])
        hit = any(value_matches(str(v), value) for v in values)
        if hit == key.startswith("not"):
            return False
    return True


def _condition_matches(condition: Mapping[str, Any], request: Request) -> bool:
    unknown = set(condition) - {"key", "values", "notValues"}
    if unknown:
        raise Unsupported(f"condition fields {sorted(unknown)}")
    found = CLAIM_KEY.match(str(condition["key"]))
    if found is None:
        raise Unsupported(f"condition key {condition['key']!r}")
    claim = request.claims.get(found.group(1)) if request.request_principal is not None else None
    if "values" in condition and not any(value_matches(str(v), claim) for v in condition["values"]):
        return False
    return not any(value_matches(str(v), claim) for v in condition.get("notValues", ()))


def rule_matches(rule: Mapping[str, Any], request: Request) -> bool:
    """Whether one rule matches the request (an empty rule matches everything)."""
    unknown = set(rule) - {"from", "to", "when"}
    if unknown:
        raise Unsupported(f"rule fields {sorted(unknown)}")
    sources = rule.get("from")
    if sources is not None and not any(
        _fields_match(_only(entry, "source"), SOURCE_FIELDS, request) for entry in sources
    ):
        return False
    operations = rule.get("to")
    if operations is not None and not any(
        _fields_match(_only(entry, "operation"), OPERATION_FIELDS, request) for entry in operations
    ):
        return False
    return all(_condition_matches(condition, request) for condition in rule.get("when", ()))


def _only(entry: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    if set(entry) != {key}:
        raise Unsupported(f"expected exactly {key!r} in {entry!r}")
    inner: Mapping[str, Any] = entry[key]
    return inner


def _name(policy: Mapping[str, Any]) -> str:
    return f"{policy['kind']}/{policy['metadata']['name']}"


def applies(policy: Mapping[str, Any], request: Request) -> bool:
    """Whether a policy (or PeerAuthentication) selects the request's workload."""
    if policy["metadata"].get("namespace") != request.namespace:
        return False
    spec = policy.get("spec") or {}
    if "targetRef" in spec or "targetRefs" in spec:
        raise Unsupported(f"{_name(policy)}: targetRefs")
    labels = (spec.get("selector") or {}).get("matchLabels") or {}
    return all(request.labels.get(k) == v for k, v in labels.items())


def peer_mode(peer_authentications: Iterable[Mapping[str, Any]], request: Request) -> str:
    """The mTLS mode for the workload: its own PeerAuthentication, else the namespace's, else PERMISSIVE."""
    namespace_wide, own = None, None
    for policy in peer_authentications:
        if not applies(policy, request):
            continue
        spec = policy.get("spec") or {}
        if "portLevelMtls" in spec:
            raise Unsupported(f"{_name(policy)}: portLevelMtls")
        mode = str((spec.get("mtls") or {}).get("mode", "PERMISSIVE"))
        if spec.get("selector"):
            own = mode
        else:
            namespace_wide = mode
    return own or namespace_wide or "PERMISSIVE"


def decide(resources: Sequence[Mapping[str, Any]], request: Request) -> Decision:
    """Istio's answer for ``request`` under the AuthorizationPolicies and PeerAuthentications given."""
    peers = [r for r in resources if r["kind"] == "PeerAuthentication"]
    if peer_mode(peers, request) == "STRICT" and request.principal is None:
        return Decision(False, "PeerAuthentication STRICT: no client certificate")
    policies = [r for r in resources if r["kind"] == "AuthorizationPolicy" and applies(r, request)]
    allows = []
    for policy in policies:
        spec = policy.get("spec") or {}
        action = spec.get("action", "ALLOW")
        rules = spec.get("rules") or []
        if action in ("CUSTOM",) or "provider" in spec:
            raise Unsupported(f"{_name(policy)}: CUSTOM")
        if action == "DENY":
            for index, rule in enumerate(rules):
                if rule_matches(rule, request):
                    return Decision(False, f"{_name(policy)} DENY rule {index}")
        elif action == "ALLOW":
            allows.append(policy)
        elif action != "AUDIT":
            raise Unsupported(f"{_name(policy)}: action {action!r}")
    if not allows:
        return Decision(True, "no ALLOW policy applies")
    for policy in allows:
        for index, rule in enumerate((policy.get("spec") or {}).get("rules") or []):
            if rule_matches(rule, request):
                return Decision(True, f"{_name(policy)} rule {index}")
    return Decision(False, f"no rule of {', '.join(_name(p) for p in allows)} matches")
