"""Istio mode: plaintext behind a sidecar, the caller read from ``x-forwarded-client-cert`` — and only then.

An extra user process runs with ``WEALIST_ISTIO_MODE=true`` beside the stack, on the stack's database and
Redis. The tests play its sidecar: they call it in plaintext and set the XFCC header Envoy would set.

Scope: the internal methods (``CheckUserExists``, ``FindOrCreateOAuthUser``), which take no user token, and
``GetMyUser`` only as far as the workload check and the missing-token answer. A call carrying a user token
would make this user process fetch auth's JWKS, and in Istio mode its client channels are plaintext: the
stack's auth speaks mTLS only, and a second, Istio-mode auth would (rightly) refuse the fetch, because
without a sidecar in between nothing puts an XFCC header on the user → auth hop. Verifying tokens is
covered against the mTLS stack in ``test_auth.py``; what Istio mode changes is only who the caller is.

Outside Istio mode the header is attacker-controlled, so the stack's mTLS user service must ignore it:
the last tests forge it over mTLS.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
import pytest_asyncio
from wealist.user.v1 import internal_pb2, internal_pb2_grpc, user_pb2, user_pb2_grpc

from devstack import StackInfo
from mesh import spiffe_id
from tests.support import ExtraService, Mesh, error_reason, extra_service, unique_email

SIDECAR = spiffe_id("user")


def xfcc(*callers: str) -> tuple[tuple[str, str], ...]:
    """Envoy's ``x-forwarded-client-cert`` metadata, one element per hop; the last is the direct caller."""
    hops = [f'By={SIDECAR};Hash={secrets.token_hex(32)};Subject="";URI={uri}' for uri in callers]
    return (("x-forwarded-client-cert", ",".join(hops)),)


@pytest.fixture(scope="module")
def istio_user(stack: StackInfo) -> Iterator[ExtraService]:
    """A user process in Istio mode (its WEALIST_AUTH_ADDR, the stack's auth, is never dialled here)."""
    with extra_service(stack, "user", {"WEALIST_ISTIO_MODE": "true"}) as service:
        yield service


@pytest_asyncio.fixture(scope="module")
async def sidecar_channel(istio_user: ExtraService) -> AsyncIterator[grpc.aio.Channel]:
    """Plaintext, as the sidecar talks to the app on the pod's loopback."""
    channel = grpc.aio.insecure_channel(istio_user.addr)
    yield channel
    await channel.close()


def _internal(channel: grpc.aio.Channel) -> internal_pb2_grpc.UserInternalServiceAsyncStub:
    return internal_pb2_grpc.UserInternalServiceStub(channel)


async def _new_user(mesh: Mesh) -> str:
    """A user made through the stack's own (mTLS) user service, acting as auth."""
    found = await _internal(mesh.channel("user", as_workload="auth")).FindOrCreateOAuthUser(
        internal_pb2.FindOrCreateOAuthUserRequest(email=unique_email("istio"), provider="test")
    )
    return found.user_id


async def test_the_caller_named_by_the_sidecar_is_allowed(
    sidecar_channel: grpc.aio.Channel, mesh: Mesh
) -> None:
    internal = _internal(sidecar_channel)
    existing = await _new_user(mesh)
    found = await internal.CheckUserExists(
        internal_pb2.CheckUserExistsRequest(user_id=existing), metadata=xfcc(spiffe_id("auth"))
    )
    assert found.exists
    # A write through the Istio-mode process lands in the same database the mTLS one reads.
    email = unique_email("istio-made")
    made = await internal.FindOrCreateOAuthUser(
        internal_pb2.FindOrCreateOAuthUserRequest(email=email, provider="test"),
        metadata=xfcc(spiffe_id("auth")),
    )
    assert made.created
    assert made.email == email
    seen = await _internal(mesh.channel("user", as_workload="auth")).CheckUserExists(
        internal_pb2.CheckUserExistsRequest(user_id=made.user_id)
    )
    assert seen.exists


async def test_the_last_hop_of_a_forwarded_chain_is_the_caller(
    sidecar_channel: grpc.aio.Channel, mesh: Mesh
) -> None:
    request = internal_pb2.CheckUserExistsRequest(user_id=await _new_user(mesh))
    internal = _internal(sidecar_channel)
    found = await internal.CheckUserExists(request, metadata=xfcc(spiffe_id("gateway"), spiffe_id("auth")))
    assert found.exists
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await internal.CheckUserExists(request, metadata=xfcc(spiffe_id("auth"), spiffe_id("gateway")))
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED


REFUSED_HEADERS: dict[str, tuple[tuple[str, str], ...]] = {
    "the gateway": xfcc(spiffe_id("gateway")),
    "no header": (),
    "another namespace": xfcc(spiffe_id("auth", namespace="other")),
    "another trust domain": xfcc("spiffe://evil.example/ns/wealist/sa/auth"),
    "a longer path": xfcc(spiffe_id("auth") + "/extra"),
    "no URI": (("x-forwarded-client-cert", f"By={SIDECAR};Hash={'0' * 64}"),),
}


@pytest.mark.parametrize("case", REFUSED_HEADERS)
async def test_other_callers_are_refused(sidecar_channel: grpc.aio.Channel, mesh: Mesh, case: str) -> None:
    request = internal_pb2.CheckUserExistsRequest(user_id=await _new_user(mesh))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _internal(sidecar_channel).CheckUserExists(request, metadata=REFUSED_HEADERS[case])
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED, case
    assert error_reason(refused.value) == "CALLER_NOT_ALLOWED", case


async def test_a_user_method_checks_the_sidecar_caller_before_the_token(
    sidecar_channel: grpc.aio.Channel,
) -> None:
    users = user_pb2_grpc.UserServiceStub(sidecar_channel)
    with pytest.raises(grpc.aio.AioRpcError) as as_gateway:
        await users.GetMyUser(user_pb2.GetMyUserRequest(), metadata=xfcc(spiffe_id("gateway")))
    assert as_gateway.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(as_gateway.value) == "TOKEN_MISSING"
    with pytest.raises(grpc.aio.AioRpcError) as as_auth:
        await users.GetMyUser(user_pb2.GetMyUserRequest(), metadata=xfcc(spiffe_id("auth")))
    assert as_auth.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_outside_istio_mode_a_forged_header_is_ignored(mesh: Mesh) -> None:
    request = internal_pb2.CheckUserExistsRequest(user_id=await _new_user(mesh))
    as_gateway = _internal(mesh.channel("user", as_workload="gateway"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await as_gateway.CheckUserExists(request, metadata=xfcc(spiffe_id("auth")))
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(refused.value) == "CALLER_NOT_ALLOWED"
    # The certificate decides, both ways: auth's passes even with a header naming the gateway.
    as_auth = _internal(mesh.channel("user", as_workload="auth"))
    assert (await as_auth.CheckUserExists(request)).exists
    assert (await as_auth.CheckUserExists(request, metadata=xfcc(spiffe_id("gateway")))).exists
