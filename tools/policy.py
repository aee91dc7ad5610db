"""The policy compiler: every method's access option → Istio security resources.

Pure functions from the service descriptors (``mesh.all_services()``) and a :class:`Layout` (namespace,
principals of the ingress and of Prometheus) to plain dictionaries, one per Kubernetes resource:

- a namespace-wide allow-nothing ``AuthorizationPolicy`` (``spec: {}``), so whatever no rule names is
  refused, including workloads added later without a policy;
- per gRPC workload, one ALLOW policy whose rules are the access options grouped by identical caller
  set (the ``debug`` operator joins every NO_SIDE_EFFECTS method, as ``MethodAccess.allows`` says), plus
  gRPC health for every workload of the namespace, reflection for ``debug`` and the Prometheus scrape;
- for the REST gateway and the Gateway API ingress proxy, ALLOW policies for their HTTP ports;
- ``PeerAuthentication`` STRICT and per-workload ``RequestAuthentication`` for the end users' JWTs.

The same rules run in-process (``mesh._interceptors``); ``tests/istio/test_equivalence.py`` checks that
both enforcers give the same answer for every method and identity.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor
from grpc_reflection.v1alpha import reflection_pb2

from gateway.mounts import EDGE_PREFIXES, GATEWAY_WORKLOAD, SEED_PREFIX
from gateway.routing import bindings
from gateway.settings import GatewaySettings
from mesh import (
    DEBUG_WORKLOAD,
    DEFAULT_PORTS,
    MeshSettings,
    MethodAccess,
    UserAuth,
    method_access,
    spiffe_id,
    workload_of,
)

Resource = dict[str, Any]

AUTH_WORKLOAD = "auth"
# The Gateway API Gateway (the ingress proxy Istio deploys for it is named "<gateway>-istio").
INGRESS_GATEWAY = "wealist"
# Where Istio's Gateway API controller labels the proxy pods it deploys for a Gateway.
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
# The ingress proxy's listener: plain HTTP; TLS termination belongs on this listener when it is added.
INGRESS_PORT = 80

HEALTH_PATHS = ("/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch")
# Both reflection versions, each by its one method (grpcurl asks v1 first, then falls back to v1alpha).
REFLECTION_PATHS = tuple(
    f"/grpc.reflection.{version}.ServerReflection/{method.name}"
    for version in ("v1", "v1alpha")
    for method in reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"].methods
)
METRICS_PATH = "/metrics"
# The paths the REST gateway serves to the outside are gateway.mounts.EDGE_PREFIXES; its own /health,
# /metrics and /docs stay inside the cluster.
# Only access tokens identify a user; a refresh token (same issuer and key) must not pass as one.
TOKEN_TYPE_CLAIM = "request.auth.claims[type]"  # noqa: S105 - a claim's name, no secret
PART_OF = {"app.kubernetes.io/part-of": "wealist"}


@dataclass(frozen=True, slots=True)
class Document:
    """One resource and the comment written above it in the YAML (why it is the way it is)."""

    body: Resource
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the platform runs: the generator's parameters that every resource shares."""

    namespace: str = "wealist"
    # The ingress proxy's identity; None: the service account Istio gives the proxy of our Gateway.
    ingress_principal: str | None = None
    # Prometheus presents mesh mTLS (a sidecar, or Istio's certificates mounted) as this identity.
    prometheus_principal: str = "cluster.local/ns/monitoring/sa/prometheus"
    # None: the gateway-routed JWKS reached through the ingress Service (see request_authentications).
    jwks_uri: str | None = None
    # Where browsers reach the platform (scheme://host). The committed render keeps a placeholder, which
    # production refuses to start with: render with the deployment's own (nox -s istio -- --public-origin).
    public_origin: str = "https://wealist.example"
    # An OTLP/gRPC collector (e.g. http://otel-collector.observability:4317): every workload exports its
    # traces there (mesh/_tracing.py). None: nothing is exported.
    otlp_endpoint: str | None = None

    def principal(self, workload: str) -> str:
        """The Istio principal of a workload: its SPIFFE id without the scheme, as the app reads it."""
        return spiffe_id(workload, self.namespace).removeprefix("spiffe://")

    def host(self, service: str) -> str:
        """The cluster DNS name of a Service in our namespace."""
        return f"{service}.{self.namespace}.svc.cluster.local"

    @property
    def ingress(self) -> str:
        """The principal of the ingress proxy that forwards outside traffic to the REST gateway."""
        return self.ingress_principal or self.principal(f"{INGRESS_GATEWAY}-istio")

    @property
    def any_workload(self) -> str:
        """Every workload identity of our namespace and trust domain (what ``callers: "*"`` means)."""
        return self.principal("*")


def meta(name: str, namespace: str, **labels: str) -> Resource:
    """``metadata`` with the labels every generated resource carries."""
    return {"name": name, "namespace": namespace, "labels": {**PART_OF, **labels}}


def grpc_port(workload: str) -> int:
    """The gRPC port a workload serves on (the runtime's default)."""
    return DEFAULT_PORTS[workload]


def metrics_port(workload: str) -> int:
    """The plain-HTTP port of ``/metrics`` and ``/health``, derived the way the runtime derives it."""
    port = MeshSettings(workload=workload, grpc_port=grpc_port(workload), http_port=None).http_port
    assert port is not None
    return port


def gateway_port() -> int:
    """The REST gateway's HTTP port (its settings' default)."""
    port = GatewaySettings.model_fields["http_port"].default
    assert isinstance(port, int)
    return port


def jwt_issuer() -> str:
    """The ``iss`` of the tokens auth issues."""
    issuer = MeshSettings.model_fields["jwt_issuer"].default
    assert isinstance(issuer, str)
    return issuer


def grpc_workloads(services: Iterable[ServiceDescriptor]) -> dict[str, list[ServiceDescriptor]]:
    """Services grouped by the workload that serves them, both sorted so the output is stable."""
    grouped: dict[str, list[ServiceDescriptor]] = defaultdict(list)
    for service in services:
        grouped[workload_of(service)].append(service)
    return {w: sorted(grouped[w], key=lambda s: s.full_name) for w in sorted(grouped)}


def allowed_workloads(access: MethodAccess) -> frozenset[str]:
    """The identities ``MethodAccess.allows`` admits: the declared callers, plus ``debug`` if read-only."""
    for caller in access.callers:
        # A pattern would mean something else to Istio than to MethodAccess.allows: refuse it here.
        if not caller or "*" in caller or "/" in caller:
            raise ValueError(f"{access.path}: caller {caller!r} is not a workload name")
    return access.callers | {DEBUG_WORKLOAD} if access.read_only else access.callers


def _operation(port: int, paths: Sequence[str], methods: Sequence[str] = ()) -> Resource:
    operation: Resource = {"ports": [str(port)]}
    if methods:
        operation["methods"] = list(methods)
    operation["paths"] = list(paths)
    return {"operation": operation}


def _rule(source: Resource | None, operation: Resource, when: list[Resource] | None = None) -> Resource:
    rule: Resource = {}
    if source is not None:
        rule["from"] = [{"source": source}]
    rule["to"] = [operation]
    if when:
        rule["when"] = when
    return rule


def method_rules(accesses: Iterable[MethodAccess], layout: Layout, port: int) -> list[Resource]:
    """One ALLOW rule per distinct (allowed identities, user required) over the given methods.

    Methods that need an end user also require a request principal (``<iss>/<sub>``, set by
    RequestAuthentication from a valid JWT) carrying an access token, as the app requires one.
    """
    groups: dict[tuple[tuple[str, ...], bool], list[str]] = defaultdict(list)
    for access in accesses:
        key = (tuple(sorted(allowed_workloads(access))), access.user is UserAuth.REQUIRED)
        groups[key].append(access.path)
    rules = []
    for (workloads, needs_user), paths in sorted(groups.items()):
        source: Resource = {"principals": [layout.principal(w) for w in workloads]}
        when = None
        if needs_user:
            source["requestPrincipals"] = [f"{jwt_issuer()}/*"]
            when = [{"key": TOKEN_TYPE_CLAIM, "values": ["access"]}]
        # gRPC is always an HTTP/2 POST; naming the method and port keeps the rule to exactly that.
        rules.append(_rule(source, _operation(port, sorted(paths), ["POST"]), when))
    return rules


def workload_policy(workload: str, services: Sequence[ServiceDescriptor], layout: Layout) -> Document:
    """The ALLOW policy of one gRPC workload: its methods, health, reflection and the metrics scrape."""
    port = grpc_port(workload)
    accesses = [method_access(m) for s in services for m in s.methods_by_name.values()]
    rules = method_rules(accesses, layout, port)
    rules.append(_rule({"principals": [layout.any_workload]}, _operation(port, HEALTH_PATHS, ["POST"])))
    rules.append(
        _rule(
            {"principals": [layout.principal(DEBUG_WORKLOAD)]},
            _operation(port, REFLECTION_PATHS, ["POST"]),
        )
    )
    rules.append(
        _rule(
            {"principals": [layout.prometheus_principal]},
            _operation(metrics_port(workload), [METRICS_PATH], ["GET"]),
        )
    )
    comment = f"""\
{workload}: {", ".join(s.full_name for s in services)}, from each method's wealist.mesh.v1.access option.
Rules group the methods whose allowed identities are the same; "debug" joins every NO_SIDE_EFFECTS method.
Health (Check, Watch) answers every workload identity of the namespace, exactly what the app's
builtin_access allows. The kubelet needs no rule: Istio rewrites the pod's probes to the sidecar agent
(port 15020, outside Envoy's inbound listener and so outside any AuthorizationPolicy), and the agent calls
the app's /health on the http-metrics port directly inside the pod. Reflection is for "debug" only, since
it lists every method. /metrics on the http-metrics port is for Prometheus only."""
    body: Resource = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": meta(workload, layout.namespace, app=workload),
        "spec": {"selector": {"matchLabels": {"app": workload}}, "action": "ALLOW", "rules": rules},
    }
    return Document(body, comment)


def allow_nothing(layout: Layout) -> Document:
    """The namespace-wide default: an ALLOW policy without rules matches nothing, so all else is denied."""
    body: Resource = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": meta("allow-nothing", layout.namespace),
        "spec": {},
    }
    comment = """\
Allow nothing by default: this ALLOW policy applies to every workload of the namespace and has no rule,
so a request reaches a workload only through a rule of the policies below."""
    return Document(body, comment)


def _edge_paths() -> list[str]:
    return [f"{prefix}*" for prefix in EDGE_PREFIXES]


def gateway_policy(layout: Layout) -> Document:
    """The REST gateway: its routed HTTP paths from the ingress proxy, /metrics from Prometheus."""
    port = gateway_port()
    rules = [
        _rule({"principals": [layout.ingress]}, _operation(port, _edge_paths())),
        _rule({"principals": [layout.prometheus_principal]}, _operation(port, [METRICS_PATH], ["GET"])),
    ]
    comment = """\
The REST gateway answers HTTP (REST, SSE, WebSocket), not gRPC: only the ingress proxy may call it, on the
paths the HTTPRoutes send it. Its own /health (probes through the sidecar agent, see above), /ready,
/openapi.json and /docs stay unreachable from other workloads."""
    body: Resource = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": meta(GATEWAY_WORKLOAD, layout.namespace, app=GATEWAY_WORKLOAD),
        "spec": {
            "selector": {"matchLabels": {"app": GATEWAY_WORKLOAD}},
            "action": "ALLOW",
            "rules": rules,
        },
    }
    return Document(body, comment)


def ingress_policy(layout: Layout) -> Document:
    """The ingress proxy Istio deploys for our Gateway lives in this namespace: let the outside in."""
    comment = f"""\
The ingress proxy of Gateway "{INGRESS_GATEWAY}" runs in this namespace, so the allow-nothing default covers
it too: outside clients (no mesh identity) may reach its listener, on the routed paths only."""
    body: Resource = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": meta(f"{INGRESS_GATEWAY}-ingress", layout.namespace),
        "spec": {
            "selector": {"matchLabels": {GATEWAY_NAME_LABEL: INGRESS_GATEWAY}},
            "action": "ALLOW",
            "rules": [_rule(None, _operation(INGRESS_PORT, _edge_paths()))],
        },
    }
    return Document(body, comment)


def authorization_policies(services: Iterable[ServiceDescriptor], layout: Layout) -> list[Document]:
    """Every AuthorizationPolicy: the default, one per gRPC workload, the gateway's and the ingress's."""
    documents = [allow_nothing(layout)]
    for workload, served in grpc_workloads(services).items():
        documents.append(workload_policy(workload, served, layout))
    documents.append(gateway_policy(layout))
    documents.append(ingress_policy(layout))
    return documents


def peer_authentication(layout: Layout) -> Document:
    """Namespace-wide STRICT mTLS: no plaintext client reaches any workload's sidecar."""
    body: Resource = {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": meta("default", layout.namespace),
        "spec": {"mtls": {"mode": "STRICT"}},
    }
    return Document(body, "mTLS between every pair of workloads; plaintext is refused.")


def jwks_path(services: Iterable[ServiceDescriptor]) -> str:
    """The gateway path of auth's JWKS, from the GetJwks method's google.api.http rule."""
    for service in services:
        if workload_of(service) != AUTH_WORKLOAD or "GetJwks" not in service.methods_by_name:
            continue
        for binding in bindings(service.methods_by_name["GetJwks"]):
            if binding.verb == "GET":
                return f"{SEED_PREFIX}{AUTH_WORKLOAD}{binding.pattern}"
    raise LookupError("auth declares no GET binding of GetJwks")


def jwks_uri(services: Iterable[ServiceDescriptor], layout: Layout) -> str:
    """Where istiod fetches the JWKS: through the ingress Service, unless the layout names a URI."""
    if layout.jwks_uri:
        return layout.jwks_uri
    return f"http://{layout.host(f'{INGRESS_GATEWAY}-istio')}:{INGRESS_PORT}{jwks_path(services)}"


def request_authentications(services: Iterable[ServiceDescriptor], layout: Layout) -> list[Document]:
    """One RequestAuthentication per gRPC workload, so rules can require a request principal.

    Not on the REST gateway: it applies each route's own token rule (a refresh call must get through
    with an expired access token in its header, a stream takes ``?token=``), which a sidecar-wide JWT
    check would pre-empt with a generic 401.
    """
    services = list(services)
    uri = jwks_uri(services, layout)
    comment = f"""\
Validates end-user JWTs so rules can require a request principal ("{jwt_issuer()}/<user id>").
jwksUri: istiod (no sidecar) fetches it in plaintext. Auth speaks only gRPC, and the gateway's port is
STRICT mTLS, so it goes through the ingress Service, the way outside clients read the same JWKS, and
needs no exception. forwardOriginalToken keeps the header for the app, which verifies the token again
(including the logout blacklist, which Istio cannot see)."""
    documents = []
    for workload in grpc_workloads(services):
        body: Resource = {
            "apiVersion": "security.istio.io/v1",
            "kind": "RequestAuthentication",
            "metadata": meta(workload, layout.namespace, app=workload),
            "spec": {
                "selector": {"matchLabels": {"app": workload}},
                "jwtRules": [{"issuer": jwt_issuer(), "jwksUri": uri, "forwardOriginalToken": True}],
            },
        }
        documents.append(Document(body, comment))
    return documents
