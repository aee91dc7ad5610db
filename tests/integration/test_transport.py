"""mTLS and per-method workload authorization, tried by the wrong callers."""

from __future__ import annotations

import grpc
import pytest
from wealist.auth.v1 import auth_pb2, auth_pb2_grpc
from wealist.user.v1 import internal_pb2, internal_pb2_grpc

from mesh import ensure_dev_pki, load_tls, open_channel
from tests.support import Mesh, error_reason, unique_email

pytestmark = pytest.mark.asyncio


def _internal(mesh: Mesh, as_workload: str) -> internal_pb2_grpc.UserInternalServiceAsyncStub:
    return internal_pb2_grpc.UserInternalServiceStub(mesh.channel("user", as_workload=as_workload))


async def _expect_unavailable(channel: grpc.aio.Channel) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetHealth(auth_pb2.GetHealthRequest(), timeout=3)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    await channel.close()


async def test_a_client_without_a_certificate_cannot_connect(mesh: Mesh) -> None:
    ca_only = grpc.ssl_channel_credentials(root_certificates=mesh.tls("gateway").ca)
    channel = grpc.aio.secure_channel(
        mesh.address("auth"), ca_only, options=[("grpc.ssl_target_name_override", "auth")]
    )
    await _expect_unavailable(channel)


async def test_a_plaintext_client_cannot_connect(mesh: Mesh) -> None:
    await _expect_unavailable(grpc.aio.insecure_channel(mesh.address("auth")))


async def test_a_certificate_from_another_ca_is_refused(
    mesh: Mesh, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other_state = tmp_path_factory.mktemp("other-ca")
    ensure_dev_pki(other_state, ["gateway"])
    impostor = load_tls(other_state, "gateway")
    # It trusts our CA (so the server's certificate passes) but presents a certificate ours did not sign.
    channel = open_channel(
        mesh.address("auth"),
        workload="auth",
        tls=type(impostor)(ca=mesh.tls("gateway").ca, cert=impostor.cert, key=impostor.key),
    )
    await _expect_unavailable(channel)


async def test_a_server_must_prove_it_is_the_workload_dialled(mesh: Mesh) -> None:
    """Dialling the auth port while expecting the user workload fails the TLS name check."""
    channel = open_channel(mesh.address("auth"), workload="user", tls=mesh.tls("gateway"))
    await _expect_unavailable(channel)


@pytest.mark.parametrize("caller", ["gateway", "board", "chat", "storage", "debug", "user"])
async def test_only_auth_may_call_the_login_rpcs(mesh: Mesh, caller: str) -> None:
    request = internal_pb2.FindOrCreateOAuthUserRequest(email=unique_email(), provider="test")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _internal(mesh, caller).FindOrCreateOAuthUser(request)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(refused.value) == "CALLER_NOT_ALLOWED"


async def test_auth_may_call_the_login_rpcs(mesh: Mesh) -> None:
    email = unique_email()
    request = internal_pb2.FindOrCreateOAuthUserRequest(
        email=email, provider="google", name="Ann", provider_subject=email
    )
    created = await _internal(mesh, "auth").FindOrCreateOAuthUser(request)
    assert created.created
    again = await _internal(mesh, "auth").FindOrCreateOAuthUser(request)
    assert not again.created
    assert again.user_id == created.user_id


async def test_the_operator_may_call_read_only_methods_only(mesh: Mesh) -> None:
    """``debug`` reaches methods marked NO_SIDE_EFFECTS and nothing else."""
    found = await _internal(mesh, "debug").CheckUserExists(
        internal_pb2.CheckUserExistsRequest(user_id="00000000-0000-0000-0000-000000000001")
    )
    assert found.exists
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await auth_pb2_grpc.AuthServiceStub(mesh.channel("auth", as_workload="debug")).IssueTestToken(
            auth_pb2.IssueTestTokenRequest(email=unique_email())
        )
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_the_gateway_may_not_call_internal_validation(mesh: Mesh) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await auth_pb2_grpc.AuthServiceStub(mesh.channel("auth")).ValidateToken(
            auth_pb2.ValidateTokenRequest(token="x")
        )
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_the_request_id_comes_back(mesh: Mesh) -> None:
    call = auth_pb2_grpc.AuthServiceStub(mesh.channel("auth")).GetHealth(
        auth_pb2.GetHealthRequest(), metadata=(("x-request-id", "req-4242"),)
    )
    await call
    trailing = dict(await call.trailing_metadata())
    assert trailing["x-request-id"] == "req-4242"
