"""One policy, two enforcers: Istio's reading of the rendered policies equals the app's own check.

For every method a running workload serves (its proto methods, gRPC health, the reflection it serves)
and every identity (each platform workload, the operator's ``debug``, an ``intruder`` certificate from
our CA, a workload of another namespace, and no certificate at all), the answer of
:func:`tests.istio.authz.decide` over the rendered AuthorizationPolicies and PeerAuthentication must be
the answer the running stack gives over mTLS.

The user token is a separate layer: a call to a method that needs an end user carries a valid access
token (and Istio's side is given the request principal such a token yields), so only the caller's
identity decides. A real call counts as allowed when it reached the app (its interceptor set
``x-request-id``) and was not refused with PERMISSION_DENIED; as denied when refused so, or when the TLS
handshake failed (UNAVAILABLE before the app). Anything else is reported as unclear and fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from wealist.auth.v1 import auth_pb2

from devstack import StackInfo
from gateway.mounts import GATEWAY_WORKLOAD
from mesh import DEBUG_WORKLOAD, WORKLOADS, ensure_dev_pki, method_access, services_of, spiffe_id
from mesh import UserAuth as MeshUserAuth
from tests.istio.authz import Request, decide
from tests.support import Mesh, auth_stub, bearer, unique_email
from tools.istio import render
from tools.policy import Layout, jwt_issuer

pytestmark = pytest.mark.asyncio

LAYOUT = Layout()
CALL_TIMEOUT = 10.0
# Calls in flight at once: enough to finish quickly, few enough for a shared 2-core machine.
CONCURRENCY = 8
DENIED_BY_CALLER_CHECK = "CALLER_NOT_ALLOWED"
REFLECTION = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who calls: a certificate's workload and namespace, or no certificate."""

    label: str
    workload: str | None
    namespace: str = LAYOUT.namespace

    @property
    def principal(self) -> str | None:
        """The principal Istio would see from this client's mTLS certificate."""
        if self.workload is None:
            return None
        return spiffe_id(self.workload, self.namespace).removeprefix("spiffe://")


IDENTITIES = (
    *(Identity(w, w) for w in (*WORKLOADS, GATEWAY_WORKLOAD, DEBUG_WORKLOAD)),
    Identity("intruder", "intruder"),
    Identity("other-namespace", "outsider", "other"),
    Identity("no-certificate", None),
)


@dataclass(frozen=True, slots=True)
class Target:
    """One method of one running workload."""

    workload: str
    path: str
    method: MethodDescriptor
    needs_user: bool
    read_only: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the real call answered."""

    code: str
    reason: str | None
    reached_app: bool
    details: str = ""

    @property
    def verdict(self) -> bool | None:
        """True: past the caller check; False: refused; None: neither can be told."""
        if self.code == "PERMISSION_DENIED":
            return False
        if not self.reached_app:
            return False if self.code == "UNAVAILABLE" else None
        return True


def _method(service_descriptor: Any, name: str) -> MethodDescriptor:
    method: MethodDescriptor = service_descriptor.methods_by_name[name]
    return method


async def served_reflection(mesh: Mesh, workload: str) -> list[str]:
    """The reflection services a workload serves, as it lists them to the operator."""
    listing = mesh.channel(workload, as_workload=DEBUG_WORKLOAD).stream_stream(
        f"/{REFLECTION.full_name}/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=CALL_TIMEOUT)
    names: list[str] = []
    async for response in listing:
        assert isinstance(response, reflection_pb2.ServerReflectionResponse)
        names.extend(s.name for s in response.list_services_response.service)
    return sorted(n for n in names if n.endswith(".ServerReflection"))


async def targets_of(mesh: Mesh, workload: str) -> list[Target]:
    """Every proto method of the workload, health Check and Watch, and each reflection it serves."""
    targets = []
    for service in services_of(workload):
        for method in service.methods_by_name.values():
            access = method_access(method)
            targets.append(
                Target(
                    workload,
                    access.path,
                    method,
                    needs_user=access.user is MeshUserAuth.REQUIRED,
                    read_only=access.read_only,
                )
            )
    health = health_pb2.DESCRIPTOR.services_by_name["Health"]
    for name in ("Check", "Watch"):
        targets.append(Target(workload, f"/{health.full_name}/{name}", _method(health, name), False, True))
    # v1 and v1alpha are the same messages under two names; the policy names both.
    info = _method(REFLECTION, "ServerReflectionInfo")
    for name in await served_reflection(mesh, workload):
        targets.append(Target(workload, f"/{name}/ServerReflectionInfo", info, False, True))
    return targets


def _request_id_in(metadata: Iterable[tuple[str, Any]] | None) -> bool:
    return any(key == "x-request-id" for key, _ in metadata or ())


def _reason(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The ``google.rpc.ErrorInfo`` reason in a call's ``grpc-status-details-bin`` trailer."""
    for key, value in metadata or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return str(info.reason)
    return None


async def _finished(rpc: Any) -> Outcome:
    """The outcome of a call, once its status is in (without raising for a failed status)."""
    code: grpc.StatusCode = await rpc.code()
    trailing = await rpc.trailing_metadata()
    return Outcome(code.name, _reason(trailing), _request_id_in(trailing), await rpc.details() or "")


async def call(channel: grpc.aio.Channel, target: Target, metadata: tuple[tuple[str, str], ...]) -> Outcome:
    """Call ``target`` with an empty request of its input type (one message, for a stream)."""
    request_class = GetMessageClass(target.method.input_type)
    response_class = GetMessageClass(target.method.output_type)
    options: dict[str, Any] = {
        "request_serializer": request_class.SerializeToString,
        "response_deserializer": response_class.FromString,
    }
    request: Message = request_class()
    path, client_streaming = target.path, target.method.client_streaming
    if target.method.server_streaming and not client_streaming:
        stream = channel.unary_stream(path, **options)(request, metadata=metadata, timeout=CALL_TIMEOUT)
        # The app sends its initial metadata as soon as it accepts a stream (a notification stream may
        # have nothing to say for a long time), and ends a refused one before that.
        if not _request_id_in(await stream.initial_metadata()):
            return await _finished(stream)
        stream.cancel()
        # Let the cancellation finish before the channel carries the next call.
        await stream.code()
        return Outcome("OK", None, reached_app=True)
    if client_streaming and target.method.server_streaming:
        bidi = channel.stream_stream(path, **options)(metadata=metadata, timeout=CALL_TIMEOUT)
        # The app sends its initial metadata once it accepts a stream, and refuses one before that. Writing
        # to a refused call races its end, and grpc's client then reports its own INTERNAL instead of the
        # server's status; so write only to an accepted call.
        if _request_id_in(await bidi.initial_metadata()):
            await bidi.write(request)
            await bidi.done_writing()
            # Its status comes after the messages it sent: read them all.
            with contextlib.suppress(grpc.aio.AioRpcError):
                while await bidi.read() is not grpc.aio.EOF:
                    pass
        return await _finished(bidi)
    if client_streaming:
        upload = channel.stream_unary(path, **options)(
            iter([request]), metadata=metadata, timeout=CALL_TIMEOUT
        )
        return await _finished(upload)
    return await _finished(
        channel.unary_unary(path, **options)(request, metadata=metadata, timeout=CALL_TIMEOUT)
    )


class Tokens:
    """Access tokens from the test login: one per identity for read-only methods, else a fresh one.

    A method with side effects may spend its token (Logout revokes it, DeleteMyUser removes its user).
    """

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self.shared: dict[str, auth_pb2.IssueTestTokenResponse] = {}
        self.lock = asyncio.Lock()

    async def fresh(self) -> auth_pb2.IssueTestTokenResponse:
        request = auth_pb2.IssueTestTokenRequest(email=unique_email("istio-matrix"))
        response: auth_pb2.IssueTestTokenResponse = await auth_stub(self.mesh).IssueTestToken(request)
        return response

    async def for_call(self, identity: Identity, target: Target) -> auth_pb2.IssueTestTokenResponse:
        if not target.read_only:
            return await self.fresh()
        async with self.lock:
            if identity.label not in self.shared:
                self.shared[identity.label] = await self.fresh()
            return self.shared[identity.label]


def _pod(files: dict[str, str], workload: str) -> tuple[dict[str, str], int]:
    """The pod labels and gRPC container port of a workload's rendered Deployment."""
    for document in yaml.safe_load_all(files[f"workloads/{workload}.yaml"]):
        if document and document["kind"] == "Deployment":
            pod = document["spec"]["template"]
            ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
            return dict(pod["metadata"]["labels"]), int(ports["grpc"])
    raise LookupError(f"no Deployment rendered for {workload}")


@pytest.fixture(scope="module")
def outsider_certificates(stack: StackInfo) -> None:
    """An intruder of our namespace and a workload of another one, both signed by the dev CA."""
    ensure_dev_pki(stack.state_dir, ["intruder"])
    ensure_dev_pki(stack.state_dir, ["outsider"], namespace="other")


async def test_istio_and_the_app_agree_for_every_method_and_identity(
    mesh: Mesh, stack: StackInfo, outsider_certificates: None
) -> None:
    files = render()
    resources = [
        document
        for name in ("authorization-policies.yaml", "authentication.yaml")
        for document in yaml.safe_load_all(files[name])
        if document
    ]
    workloads = sorted(name for name, spec in stack.services.items() if spec.grpc_port is not None)
    targets = [t for w in workloads for t in await targets_of(mesh, w)]
    tokens = Tokens(mesh)
    gate = asyncio.Semaphore(CONCURRENCY)
    bare: dict[str, grpc.aio.Channel] = {}

    def channel_for(identity: Identity, workload: str) -> grpc.aio.Channel:
        if identity.workload is not None:
            return mesh.channel(workload, as_workload=identity.workload)
        if workload not in bare:
            # Trusts the server but presents no certificate: the handshake must fail.
            credentials = grpc.ssl_channel_credentials(root_certificates=mesh.tls(GATEWAY_WORKLOAD).ca)
            bare[workload] = grpc.aio.secure_channel(
                mesh.address(workload), credentials, options=[("grpc.ssl_target_name_override", workload)]
            )
        return bare[workload]

    async def check(identity: Identity, target: Target) -> tuple[bool, Outcome, str]:
        async with gate:
            metadata: tuple[tuple[str, str], ...] = ()
            request_principal, claims = None, {}
            if target.needs_user:
                login = await tokens.for_call(identity, target)
                metadata = bearer(login.access_token)
                request_principal, claims = f"{jwt_issuer()}/{login.user_id}", {"type": "access"}
            labels, port = _pod(files, target.workload)
            expected = decide(
                resources,
                Request(
                    namespace=LAYOUT.namespace,
                    labels=labels,
                    principal=identity.principal,
                    path=target.path,
                    port=port,
                    request_principal=request_principal,
                    claims=claims,
                ),
            )
            outcome = await call(channel_for(identity, target.workload), target, metadata)
            return expected.allowed, outcome, expected.why

    pairs = [(identity, target) for target in targets for identity in IDENTITIES]
    try:
        results = await asyncio.gather(*(check(i, t) for i, t in pairs))
    finally:
        for channel in bare.values():
            await channel.close()

    disagreements = []
    for (identity, target), (expected, outcome, why) in zip(pairs, results, strict=True):
        if outcome.verdict is not expected:
            disagreements.append(
                f"{target.path} as {identity.label}: istio {'allows' if expected else 'denies'} ({why}), "
                f"app answered {outcome.code} {outcome.details!r} (reason {outcome.reason}, "
                f"reached app: {outcome.reached_app})"
            )
        if outcome.code == "PERMISSION_DENIED" and outcome.reason != DENIED_BY_CALLER_CHECK:
            disagreements.append(f"{target.path} as {identity.label}: refused for {outcome.reason}")
        if outcome.code == "DEADLINE_EXCEEDED":
            disagreements.append(f"{target.path} as {identity.label}: no answer in {CALL_TIMEOUT} s")
        if identity.workload is None and outcome.reached_app:
            disagreements.append(f"{target.path}: a client without a certificate reached the app")
    agreeing = sum(
        1 for _, (expected, outcome, _) in zip(pairs, results, strict=True) if outcome.verdict is expected
    )
    allowed = sum(1 for expected, _, _ in results if expected)
    sys.stdout.write(
        f"\npolicy equivalence: {len(targets)} methods on {', '.join(workloads)}"
        f" x {len(IDENTITIES)} identities = {len(pairs)} pairs;"
        f" {agreeing} agree ({allowed} allowed, {len(pairs) - allowed} denied)\n"
        f"real answers: {dict(sorted(Counter(o.code for _, o, _ in results).items()))}\n"
    )
    assert len(pairs) == len(targets) * len(IDENTITIES)
    assert not disagreements, "\n".join(disagreements)
    assert agreeing == len(pairs)
