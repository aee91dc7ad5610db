"""Workloads and traffic for Kubernetes + Istio, derived from the code and the descriptors.

Pure functions to plain dictionaries, like :mod:`tools.policy`:

- workloads: a ServiceAccount, Service, Deployment, HorizontalPodAutoscaler and PodDisruptionBudget for
  every workload that exists as code (``services/<name>/__main__.py``, ``gateway/__main__.py``), a
  migration Job for each service that owns a database (``services/<name>/migrations/``), and the one
  ConfigMap of the mesh settings they share;
- traffic: the Gateway API Gateway and HTTPRoute in front of the REST gateway (streams without a
  timeout, found from the methods' ``rest.stream`` option), and per gRPC workload a DestinationRule
  (mTLS, connection pool, outlier detection) and a VirtualService (retries for idempotent methods).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.descriptor import ServiceDescriptor
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from gateway.mounts import API_PREFIX, EDGE_PREFIXES, GATEWAY_WORKLOAD, SEED_PREFIX
from gateway.routing import Route, build_routes
from gateway.settings import GatewaySettings
from mesh import (
    DEFAULT_PORTS,
    OTLP_ENDPOINT_VARIABLE,
    REQUIRED_IN_PRODUCTION,
    MeshSettings,
    method_access,
    variable_of,
)
from tools.image import Images
from tools.policy import (
    INGRESS_GATEWAY,
    INGRESS_PORT,
    Document,
    Layout,
    Resource,
    gateway_port,
    grpc_port,
    grpc_workloads,
    meta,
    metrics_port,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIG_MAP = "wealist-mesh"
# Settings that carry the object store's address and credentials, for a workload that declares them.
S3_CREDENTIALS = ("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY")
# An unprivileged user of no meaning on the node; the image must not need root.
RUN_AS = 10001
# Statuses of a call that did not run (UNAVAILABLE, as mesh/_channels.py RETRY_POLICY retries), a pod that
# went away mid-call (CANCELLED at shutdown), and failures before the app: safe for idempotent methods.
RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled"
RETRY_ATTEMPTS = 3
# Failures that happened before the request reached the app: safe to retry for any method.
SAFE_RETRY_ON = "connect-failure,refused-stream"
# Seconds the edge waits beyond the gateway's own deadline, so the gateway's enveloped 504 wins the race.
EDGE_GRACE_SECONDS = 5.0
# Active requests a client sidecar lets through to one service; streams hold theirs for their lifetime.
MAX_REQUESTS = 1024
MAX_REQUESTS_STREAMING = 16384


@dataclass(frozen=True, slots=True)
class SecretEnv:
    """One environment variable read from the workload's Secret."""

    name: str
    optional: bool


@dataclass(frozen=True, slots=True)
class Port:
    """A named container and Service port."""

    name: str
    number: int
    app_protocol: str


@dataclass(frozen=True, slots=True)
class Workload:
    """One process of the platform as Kubernetes runs it."""

    name: str
    module: str
    ports: tuple[Port, ...]
    # The named port of the plain-HTTP /health the probes call.
    health_port: str
    owns_database: bool
    secrets: tuple[SecretEnv, ...]

    @property
    def secret_name(self) -> str:
        """The Secret the operator provides with :attr:`secrets` as keys."""
        return f"{self.name}-secrets"


def _is_secret(info: FieldInfo) -> bool:
    return info.annotation is SecretStr or SecretStr in typing.get_args(info.annotation)


def settings_class(module: str) -> type[MeshSettings]:
    """The settings class a workload's package defines (``<package>.settings``), else MeshSettings."""
    try:
        settings = importlib.import_module(f"{module}.settings")
    except ModuleNotFoundError as missing:
        if missing.name != f"{module}.settings":
            raise
        return MeshSettings
    found = [
        cls
        for _, cls in inspect.getmembers(settings, inspect.isclass)
        if issubclass(cls, MeshSettings) and cls.__module__ == settings.__name__
    ]
    if len(found) != 1:
        raise LookupError(f"{settings.__name__} should define exactly one MeshSettings subclass")
    return found[0]


def secret_env(settings: type[MeshSettings], *, owns_database: bool) -> tuple[SecretEnv, ...]:
    """What a workload reads from its Secret: the servers' URLs, its SecretStr fields, S3 credentials.

    The other S3 settings (bucket, region, public endpoint) are configuration, not credentials.

    A field whose default is None is optional in the Secret too (the app's own settings validation says
    what production cannot do without); the servers' URLs and the rest are required.
    """
    fields = settings.model_fields
    names = ["redis_url", "database_url"] if owns_database else ["redis_url"]
    for name, info in fields.items():
        if _is_secret(info) or variable_of(name, info) in S3_CREDENTIALS:
            names.append(name)
    return tuple(
        SecretEnv(
            variable_of(n, fields[n]),
            optional=n not in ("redis_url", "database_url")
            and fields[n].default is None
            and fields[n].json_schema_extra != REQUIRED_IN_PRODUCTION,
        )
        for n in names
    )


def code_workloads(root: Path = ROOT) -> list[Workload]:
    """Every workload that exists as code, services by name and then the gateway."""
    workloads = []
    for main in sorted((root / "services").glob("*/__main__.py")):
        name = main.parent.name
        if name not in DEFAULT_PORTS:
            raise LookupError(f"services/{name} has no port in mesh.DEFAULT_PORTS")
        module = f"services.{name}"
        owns_database = (main.parent / "migrations").is_dir()
        workloads.append(
            Workload(
                name=name,
                module=module,
                ports=(
                    Port("grpc", grpc_port(name), "grpc"),
                    Port("http-metrics", metrics_port(name), "http"),
                ),
                health_port="http-metrics",
                owns_database=owns_database,
                secrets=secret_env(settings_class(module), owns_database=owns_database),
            )
        )
    if (root / "gateway" / "__main__.py").is_file():
        workloads.append(
            Workload(
                name=GATEWAY_WORKLOAD,
                module="gateway",
                ports=(Port("http", gateway_port(), "http"),),
                health_port="http",
                owns_database=False,
                secrets=secret_env(settings_class("gateway"), owns_database=False),
            )
        )
    return workloads


def _setting(field: str) -> str:
    """The variable of a MeshSettings field, refusing one that does not exist (a renamed setting)."""
    info = MeshSettings.model_fields.get(field)
    if info is None:
        raise LookupError(f"MeshSettings has no field {field!r}")
    return variable_of(field, info)


def _variable(settings: type[MeshSettings], field: str) -> str:
    return variable_of(field, settings.model_fields[field])


def public_config(origin: str) -> dict[str, str]:
    """The settings that name the public origin: auth's URLs and redirects, the gateway's CORS."""
    origin = origin.rstrip("/")
    auth, gateway = settings_class("services.auth"), GatewaySettings
    return {
        _variable(auth, "public_url"): f"{origin}/svc/auth",
        _variable(auth, "web_callback_url"): f"{origin}/oauth/callback",
        _variable(auth, "allowed_redirects"): json.dumps([f"{origin}/"]),
        _variable(auth, "google_redirect_uri"): f"{origin}/api/oauth2/callback/google",
        _variable(gateway, "cors_origins"): json.dumps([origin]),
    }


def mesh_config(layout: Layout) -> dict[str, str]:
    """The settings every workload shares in Kubernetes, by variable name."""
    data = {
        _setting("istio_mode"): "true",
        _setting("namespace"): layout.namespace,
        # Istio forwards inbound traffic to the pod IP, not to localhost.
        _setting("bind_host"): "0.0.0.0",  # noqa: S104 - the sidecar is the only way in (STRICT mTLS)
        _setting("migrate_on_start"): "false",
        _setting("environment"): "production",
        # The root filesystem is read-only: no bytecode cache to write; logs straight to stdout.
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    data.update(public_config(layout.public_origin))
    if layout.otlp_endpoint:
        data[OTLP_ENDPOINT_VARIABLE] = layout.otlp_endpoint
    for field in MeshSettings.model_fields:
        if field.endswith("_addr"):
            workload = field.removesuffix("_addr")
            data[_setting(field)] = f"{layout.host(workload)}:{grpc_port(workload)}"
    return dict(sorted(data.items()))


def config_map(layout: Layout) -> Document:
    """The ConfigMap of :func:`mesh_config`."""
    body: Resource = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(CONFIG_MAP, layout.namespace),
        "data": mesh_config(layout),
    }
    return Document(body, "Settings every workload shares (mesh.MeshSettings); secrets live in Secrets.")


def config_checksum(layout: Layout) -> str:
    """A digest of the shared settings: a change of them rolls the Deployments."""
    return hashlib.sha256(json.dumps(mesh_config(layout), sort_keys=True).encode()).hexdigest()


def _security_context() -> Resource:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_security_context() -> Resource:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _env(workload: Workload) -> list[Resource]:
    env = []
    for secret in workload.secrets:
        ref: Resource = {"name": workload.secret_name, "key": secret.name}
        if secret.optional:
            ref["optional"] = True
        env.append({"name": secret.name, "valueFrom": {"secretKeyRef": ref}})
    return env


def _container(workload: Workload, images: Images, command: list[str], env: list[Resource]) -> Resource:
    container: Resource = {
        "name": workload.name,
        "image": images.of(workload.name),
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "envFrom": [{"configMapRef": {"name": CONFIG_MAP}}],
    }
    if env:
        container["env"] = env
    container["securityContext"] = _security_context()
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108 - a private emptyDir
    return container


def _tmp_volume() -> Resource:
    return {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}


def _probe(workload: Workload, period: int, failures: int) -> Resource:
    return {
        "httpGet": {"path": "/health", "port": workload.health_port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def service_account(workload: Workload, layout: Layout) -> Document:
    """The workload's identity: Istio's principal is ``<trust domain>/ns/<ns>/sa/<workload>``."""
    body: Resource = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta(workload.name, layout.namespace, app=workload.name),
        # The app never calls the Kubernetes API; the sidecar gets its own projected token.
        "automountServiceAccountToken": False,
    }
    return Document(body, f"{workload.name}: the identity the AuthorizationPolicies name.")


def service(workload: Workload, layout: Layout) -> Document:
    """The Service; port names and appProtocol tell Istio which protocol each port speaks."""
    ports = [
        {
            "name": p.name,
            "port": p.number,
            "targetPort": p.name,
            "protocol": "TCP",
            "appProtocol": p.app_protocol,
        }
        for p in workload.ports
    ]
    body: Resource = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(workload.name, layout.namespace, app=workload.name),
        "spec": {"selector": {"app": workload.name}, "ports": ports},
    }
    return Document(body)


def deployment(workload: Workload, layout: Layout, images: Images) -> Document:
    """The Deployment: non-root, read-only, probes on the plain-HTTP /health; replicas left to the HPA."""
    container = _container(workload, images, ["python", "-m", workload.module], _env(workload))
    container["ports"] = [
        {"name": p.name, "containerPort": p.number, "protocol": "TCP"} for p in workload.ports
    ]
    container["startupProbe"] = _probe(workload, period=2, failures=30)
    container["readinessProbe"] = _probe(workload, period=5, failures=3)
    container["livenessProbe"] = _probe(workload, period=10, failures=3)
    container["resources"] = {
        "requests": {"cpu": "100m", "memory": "192Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    selector = {"app": workload.name}
    body: Resource = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(workload.name, layout.namespace, app=workload.name),
        "spec": {
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": {**selector, "sidecar.istio.io/inject": "true"},
                    "annotations": {
                        # The app dials Redis, Postgres and other services at start: through the sidecar.
                        "proxy.istio.io/config": json.dumps({"holdApplicationUntilProxyStarts": True}),
                        "wealist.dev/config-checksum": config_checksum(layout),
                    },
                },
                "spec": {
                    "serviceAccountName": workload.name,
                    "automountServiceAccountToken": False,
                    "securityContext": _pod_security_context(),
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": selector},
                        }
                    ],
                    "containers": [container],
                    "volumes": [_tmp_volume()],
                },
            },
        },
    }
    secrets = ", ".join(s.name + (" (optional)" if s.optional else "") for s in workload.secrets)
    comment = f"""\
{workload.name}: expects Secret "{workload.secret_name}" with keys {secrets}.
Probes call the plain-HTTP /health: Istio rewrites them to its agent, which calls the app inside the pod
without a client certificate, so a gRPC health probe would be refused by the app's caller check."""
    return Document(body, comment)


def autoscaler(workload: Workload, layout: Layout) -> Document:
    """CPU-based autoscaling from two replicas (one per node, so one node's loss leaves one)."""
    body: Resource = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(workload.name, layout.namespace, app=workload.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload.name},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }
    return Document(body)


def disruption_budget(workload: Workload, layout: Layout) -> Document:
    """At most one pod of the workload down for voluntary disruptions (drains), whatever the scale."""
    body: Resource = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(workload.name, layout.namespace, app=workload.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": workload.name}}},
    }
    return Document(body)


def migration_job(workload: Workload, layout: Layout, images: Images) -> Document:
    """Alembic ``upgrade head`` for a service's database, run before (or beside) a rollout."""
    env = [e for e in _env(workload) if e["name"] == variable_of("database_url", _database_field())]
    container = _container(workload, images, ["python", "-m", "mesh.migrate", workload.name], env)
    container["resources"] = {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    }
    body: Resource = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(f"{workload.name}-migrate", layout.namespace, app=f"{workload.name}-migrate"),
        "spec": {
            "backoffLimit": 3,
            "activeDeadlineSeconds": 600,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {
                    "labels": {"app": f"{workload.name}-migrate", "sidecar.istio.io/inject": "false"},
                },
                "spec": {
                    "serviceAccountName": workload.name,
                    "automountServiceAccountToken": False,
                    "restartPolicy": "Never",
                    "securityContext": _pod_security_context(),
                    "containers": [container],
                    "volumes": [_tmp_volume()],
                },
            },
        },
    }
    comment = f"""\
Migrations of {workload.name}'s database (the services run with WEALIST_MIGRATE_ON_START=false).
No sidecar: a classic sidecar never exits, so the Job would never complete; the Job talks only to
Postgres, which sits outside the mesh. A Job's template is immutable: the deploy pipeline replaces the
Job for each release (it is idempotent, and removed an hour after it finishes)."""
    return Document(body, comment)


def _database_field() -> FieldInfo:
    return MeshSettings.model_fields["database_url"]


def workload_documents(workload: Workload, layout: Layout, images: Images) -> list[Document]:
    """Everything one workload needs, in the order ``kubectl apply`` should see it."""
    documents = [
        service_account(workload, layout),
        service(workload, layout),
        deployment(workload, layout, images),
        autoscaler(workload, layout),
        disruption_budget(workload, layout),
    ]
    if workload.owns_database:
        documents.append(migration_job(workload, layout, images))
    return documents


# --- traffic -------------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """A Gateway API / Istio duration: whole seconds, else milliseconds."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def _gateway_default(name: str) -> object:
    return GatewaySettings.model_fields[name].get_default(call_default_factory=True)


def deadlines() -> tuple[float, dict[str, float]]:
    """The gateway's default deadline and its per-workload overrides (its settings' defaults)."""
    default = _gateway_default("default_deadline_seconds")
    overrides = _gateway_default("deadline_overrides")
    assert isinstance(default, float)
    assert isinstance(overrides, dict)
    return default, {str(k): float(v) for k, v in overrides.items()}


def longest_deadlines() -> tuple[float, dict[str, float]]:
    """The longest deadline a client may ask the gateway for (Grpc-Timeout is clamped to it), by workload.

    The edge must wait at least this long, or it would cut off a call the gateway lets run.
    """
    settings = GatewaySettings.model_construct()
    workloads = {*settings.deadline_overrides, *settings.max_deadline_overrides}
    return settings.max_deadline_for(""), {w: settings.max_deadline_for(w) for w in sorted(workloads)}


def deadline_for(workload: str) -> float:
    """The gateway's deadline of unary calls to ``workload``."""
    default, overrides = deadlines()
    return overrides.get(workload, default)


def gateway(layout: Layout) -> Document:
    """The Gateway API Gateway; Istio deploys its proxy (``<name>-istio``) and Service for it."""
    body: Resource = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": meta(INGRESS_GATEWAY, layout.namespace),
        "spec": {
            "gatewayClassName": "istio",
            "listeners": [
                {
                    "name": "http",
                    "port": INGRESS_PORT,
                    "protocol": "HTTP",
                    "allowedRoutes": {"namespaces": {"from": "Same"}},
                }
            ],
        },
    }
    comment = """\
The way in. Terminate TLS here in production: an HTTPS listener with a certificateRefs Secret."""
    return Document(body, comment)


def _mounts(workload: str) -> list[str]:
    return [f"{API_PREFIX}{workload}", f"{SEED_PREFIX}{workload}"]


def stream_matches(routes: Sequence[Route]) -> list[Resource]:
    """Route matches for every streaming binding (SSE, WebSocket) under both gateway mounts.

    A template without variables is matched exactly. One with variables is matched by the prefix of
    literal segments it starts with: Istio ranks RegularExpression matches below every PathPrefix, so a
    regex would never beat ``/api/svc/``. Such a prefix must not also cover a non-streaming route's
    literal start, or that route would lose its timeout: that is refused here, loudly.
    """
    matches: list[Resource] = []
    for route in routes:
        if not route.stream:
            continue
        template = route.template
        exact = len(template.literal_prefix) == len(template.pattern)
        if not exact:
            _refuse_shared_prefix(route, routes)
        literal = "/" + "/".join(template.literal_prefix)
        if exact and template.verb is not None:
            literal += f":{template.verb}"
        for mount in _mounts(route.workload):
            matches.append(
                {
                    "path": {"type": "Exact" if exact else "PathPrefix", "value": mount + literal},
                    "method": route.verb,
                }
            )
    return sorted(matches, key=lambda m: (m["path"]["value"], m["method"]))


def _refuse_shared_prefix(stream: Route, routes: Sequence[Route]) -> None:
    prefix = stream.template.literal_prefix
    if not prefix:
        raise ValueError(f"{stream.grpc_path}: a stream template needs a literal first segment")
    for other in routes:
        if other.stream or other.workload != stream.workload:
            continue
        if other.template.literal_prefix[: len(prefix)] == prefix:
            raise ValueError(
                f"{stream.grpc_path} streams under /{'/'.join(prefix)}, which also starts "
                f"{other.grpc_path} ({other.template.source}); give the stream a path of its own"
            )


MAX_ROUTE_RULES = 16
MAX_ROUTE_MATCHES = 128


def http_route(services: Iterable[ServiceDescriptor], layout: Layout) -> Document:
    """All outside HTTP to the REST gateway, streams without a timeout, the rest with the gateway's."""
    backend = [{"name": GATEWAY_WORKLOAD, "port": gateway_port()}]
    rules: list[Resource] = []
    streams = stream_matches(build_routes(services))
    if streams:
        rules.append(
            {"name": "streams", "matches": streams, "backendRefs": backend, "timeouts": {"request": "0s"}}
        )
    default, overrides = longest_deadlines()
    for workload, seconds in sorted(overrides.items()):
        rules.append(
            {
                "name": workload,
                "matches": [{"path": {"type": "PathPrefix", "value": m + "/"}} for m in _mounts(workload)],
                "backendRefs": backend,
                "timeouts": {"request": duration(seconds + EDGE_GRACE_SECONDS)},
            }
        )
    rules.append(
        {
            "name": "default",
            "matches": [{"path": {"type": "PathPrefix", "value": p}} for p in EDGE_PREFIXES],
            "backendRefs": backend,
            "timeouts": {"request": duration(default + EDGE_GRACE_SECONDS)},
        }
    )
    total = sum(len(r["matches"]) for r in rules)
    if len(rules) > MAX_ROUTE_RULES or total > MAX_ROUTE_MATCHES:
        raise ValueError(f"{len(rules)} rules / {total} matches exceed one HTTPRoute: split it")
    body: Resource = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta("wealist-api", layout.namespace),
        "spec": {"parentRefs": [{"name": INGRESS_GATEWAY}], "rules": rules},
    }
    comment = f"""\
/api/svc/<svc>, /svc/<svc> and the OAuth2 paths to the REST gateway, which routes them from the descriptors.
The edge waits {duration(EDGE_GRACE_SECONDS)} longer than the longest deadline the gateway lets a client ask
for on the service, so the client gets the gateway's enveloped error rather than Envoy's. Streams (methods
with rest.stream: SSE, WebSocket) get "0s", which Gateway API defines as no timeout."""
    return Document(body, comment)


def _is_streaming_workload(services: Sequence[ServiceDescriptor]) -> bool:
    return any(m.server_streaming or m.client_streaming for s in services for m in s.methods_by_name.values())


def destination_rule(name: str, layout: Layout, *, streaming: bool, h2: bool, outlier: Resource) -> Document:
    """mTLS from the client sidecar, a bounded connection pool and outlier detection for one host."""
    http: Resource = {
        "h2UpgradePolicy": "UPGRADE" if h2 else "DO_NOT_UPGRADE",
        "http2MaxRequests": MAX_REQUESTS_STREAMING if streaming else MAX_REQUESTS,
        # Unlimited: gRPC multiplexes calls on long-lived connections and the client sidecar balances
        # each request across endpoints, so recycling connections would only add handshakes.
        "maxRequestsPerConnection": 0,
    }
    body: Resource = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": meta(name, layout.namespace, app=name),
        "spec": {
            "host": layout.host(name),
            "trafficPolicy": {
                "tls": {"mode": "ISTIO_MUTUAL"},
                "connectionPool": {"tcp": {"connectTimeout": "2s"}, "http": http},
                "outlierDetection": outlier,
            },
        },
    }
    return Document(body)


def grpc_destination_rule(workload: str, services: Sequence[ServiceDescriptor], layout: Layout) -> Document:
    """A gRPC workload: pods that keep failing as a gateway would (UNAVAILABLE, DEADLINE) are ejected.

    Application errors (INTERNAL for one bad request) say nothing about a pod's health: 5xx ejection
    is off. At most half the pods are ejected, since a dependency's outage makes every pod look sick.
    """
    outlier: Resource = {
        "consecutive5xxErrors": 0,
        "consecutiveGatewayErrors": 5,
        "interval": "10s",
        "baseEjectionTime": "30s",
        "maxEjectionPercent": 50,
    }
    document = destination_rule(
        workload, layout, streaming=_is_streaming_workload(services), h2=True, outlier=outlier
    )
    comment = f"""\
{workload}: gRPC is HTTP/2 already; 5xx ejection is off (one bad request's INTERNAL says nothing of
the pod), gateway errors (UNAVAILABLE, DEADLINE_EXCEEDED) eject it, never more than half of the pods."""
    return Document(document.body, comment)


def gateway_destination_rule(layout: Layout) -> Document:
    """The REST gateway: HTTP/1.1 kept end to end, ejection on connection failures only."""
    outlier: Resource = {
        "splitExternalLocalOriginErrors": True,
        "consecutiveLocalOriginFailures": 5,
        "consecutive5xxErrors": 0,
        "consecutiveGatewayErrors": 0,
        "interval": "10s",
        "baseEjectionTime": "30s",
        "maxEjectionPercent": 50,
    }
    document = destination_rule(GATEWAY_WORKLOAD, layout, streaming=True, h2=False, outlier=outlier)
    comment = """\
gateway: no h2 upgrade, so WebSocket's HTTP/1.1 Upgrade handshake passes untouched. The gateway answers
502/503/504 for a backend's failure, so only connection failures of its own eject a gateway pod."""
    return Document(document.body, comment)


def retry_paths(services: Sequence[ServiceDescriptor]) -> list[str]:
    """Paths of the unary idempotent methods (streams are never retried: they may have sent data)."""
    paths = []
    for service in services:
        for method in service.methods_by_name.values():
            access = method_access(method)
            if access.idempotent and not access.client_streaming and not access.server_streaming:
                paths.append(access.path)
    return sorted(paths)


def virtual_service(workload: str, services: Sequence[ServiceDescriptor], layout: Layout) -> Document:
    """Per-method retries for one gRPC workload: DestinationRules cannot tell methods apart."""
    host = layout.host(workload)
    destination = [{"destination": {"host": host, "port": {"number": grpc_port(workload)}}}]
    http: list[Resource] = []
    paths = retry_paths(services)
    deadline = deadline_for(workload)
    if paths:
        http.append(
            {
                "name": "idempotent",
                "match": [{"uri": {"exact": p}} for p in paths],
                "route": destination,
                "retries": {
                    "attempts": RETRY_ATTEMPTS,
                    "perTryTimeout": duration(deadline / RETRY_ATTEMPTS),
                    "retryOn": RETRY_ON,
                },
            }
        )
    http.append(
        {
            "name": "default",
            "route": destination,
            "retries": {"attempts": 2, "retryOn": SAFE_RETRY_ON},
        }
    )
    body: Resource = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": meta(workload, layout.namespace, app=workload),
        "spec": {"hosts": [host], "http": http},
    }
    comment = f"""\
{workload}: the idempotent unary methods (idempotency_level NO_SIDE_EFFECTS or IDEMPOTENT) are retried on
another pod; every other call only when it never reached the app. Without this, Istio's default retries
UNAVAILABLE for every method, non-idempotent ones included. resource-exhausted is not retried: the app
answers it for limits, and retrying a limit only adds load. No route timeout, so the caller's
grpc-timeout stays the deadline; each try gets a third of the gateway's deadline for {workload}."""
    return Document(body, comment)


def traffic_documents(services: Iterable[ServiceDescriptor], layout: Layout) -> list[Document]:
    """Gateway, HTTPRoute, and a DestinationRule and VirtualService per gRPC workload."""
    services = list(services)
    documents = [gateway(layout), http_route(services, layout), gateway_destination_rule(layout)]
    for workload, served in grpc_workloads(services).items():
        documents.append(grpc_destination_rule(workload, served, layout))
        documents.append(virtual_service(workload, served, layout))
    return documents
