"""The auth service over gRPC with mTLS, against real Redis and the real user service."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from wealist.auth.v1 import auth_pb2
from wealist.user.v1 import internal_pb2, internal_pb2_grpc, user_pb2, user_pb2_grpc

from services.auth.keys import KeyRing
from services.auth.tokens import TokenIssuer
from tests.support import Mesh, auth_stub, bearer, error_reason, field_violations, rpc_login, unique_email

ISSUER = "wealist-auth-service"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_made(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signature)}"


def _users(mesh: Mesh) -> user_pb2_grpc.UserServiceAsyncStub:
    return user_pb2_grpc.UserServiceStub(mesh.channel("user"))


def _ring(mesh: Mesh) -> KeyRing:
    """The running auth's key ring, read from the state folder as a second process would."""
    return KeyRing.load_or_create(mesh.state_dir / "auth" / "keys", retire_after_seconds=604800)


async def test_test_login_creates_the_user_once(mesh: Mesh) -> None:
    email = unique_email("once")
    first = await rpc_login(mesh, email)
    again = await rpc_login(mesh, email.upper())
    other = await rpc_login(mesh)
    assert first.user_id == again.user_id
    assert other.user_id != first.user_id
    internal = internal_pb2_grpc.UserInternalServiceStub(mesh.channel("user", as_workload="auth"))
    found = await internal.CheckUserExists(internal_pb2.CheckUserExistsRequest(user_id=first.user_id))
    assert found.exists
    me = await _users(mesh).GetMyUser(user_pb2.GetMyUserRequest(), metadata=bearer(first.access_token))
    assert me.user.email == email
    assert me.user.provider == "test"


async def test_issued_tokens_verify_against_the_published_jwks(mesh: Mesh) -> None:
    pair = await rpc_login(mesh)
    jwks = await auth_stub(mesh).GetJwks(auth_pb2.GetJwksRequest())
    keys = KeySet.import_key_set(MessageToDict(jwks, preserving_proto_field_name=True))  # type: ignore[arg-type]
    for token, kind in ((pair.access_token, "access"), (pair.refresh_token, "refresh")):
        decoded = jwt.decode(token, keys, algorithms=["RS256"])
        assert decoded.header["kid"] in {key["kid"] for key in MessageToDict(jwks)["keys"]}
        assert decoded.header["typ"] == "JWT"
        claims = decoded.claims
        assert claims["sub"] == pair.user_id
        assert claims["iss"] == ISSUER
        assert claims["type"] == kind
        assert "@example.com" in claims["email"]
    access = jwt.decode(pair.access_token, keys, algorithms=["RS256"]).claims
    refresh = jwt.decode(pair.refresh_token, keys, algorithms=["RS256"]).claims
    assert access["exp"] - access["iat"] == 1800
    assert refresh["exp"] - refresh["iat"] == 604800


async def test_refresh_rotates_and_the_old_refresh_token_is_refused(mesh: Mesh) -> None:
    pair = await rpc_login(mesh)
    auth = auth_stub(mesh)
    renewed = await auth.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=pair.refresh_token))
    assert renewed.user_id == pair.user_id
    assert renewed.refresh_token != pair.refresh_token
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await auth.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=pair.refresh_token))
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(refused.value) == "TOKEN_REVOKED"
    me = await _users(mesh).GetMyUser(user_pb2.GetMyUserRequest(), metadata=bearer(renewed.access_token))
    assert me.user.user_id == pair.user_id


async def test_concurrent_refreshes_of_one_token_give_one_new_pair(mesh: Mesh) -> None:
    pair = await rpc_login(mesh)
    auth = auth_stub(mesh)
    request = auth_pb2.RefreshTokenRequest(refresh_token=pair.refresh_token)
    results = await asyncio.gather(*(auth.RefreshToken(request) for _ in range(8)), return_exceptions=True)
    assert sum(isinstance(result, auth_pb2.RefreshTokenResponse) for result in results) == 1


async def test_logout_revokes_the_token_in_every_service(mesh: Mesh) -> None:
    pair = await rpc_login(mesh)
    auth = auth_stub(mesh)
    await auth.Logout(
        auth_pb2.LogoutRequest(refresh_token=pair.refresh_token), metadata=bearer(pair.access_token)
    )
    board_view = auth_stub(mesh, as_workload="board")
    with pytest.raises(grpc.aio.AioRpcError) as by_validate:
        await board_view.ValidateToken(auth_pb2.ValidateTokenRequest(token=pair.access_token))
    assert by_validate.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(by_validate.value) == "TOKEN_REVOKED"
    with pytest.raises(grpc.aio.AioRpcError) as by_user:
        await _users(mesh).GetMyUser(user_pb2.GetMyUserRequest(), metadata=bearer(pair.access_token))
    assert by_user.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(by_user.value) == "TOKEN_REVOKED"
    with pytest.raises(grpc.aio.AioRpcError) as by_refresh:
        await auth.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=pair.refresh_token))
    assert error_reason(by_refresh.value) == "SESSION_ENDED"


async def test_validate_token_returns_the_claims(mesh: Mesh) -> None:
    pair = await rpc_login(mesh)
    claims = await auth_stub(mesh, as_workload="board").ValidateToken(
        auth_pb2.ValidateTokenRequest(token=pair.access_token)
    )
    assert claims.user_id == pair.user_id
    assert claims.expires_at - claims.issued_at == 1800


def _bad_tokens(mesh: Mesh, pair: auth_pb2.IssueTestTokenResponse) -> dict[str, tuple[str, str]]:
    """Attacks on the access token, each with the reason the services must give."""
    ring = _ring(mesh)
    kid = ring.current.kid
    now = int(time.time())
    claims = {"sub": pair.user_id, "iss": ISSUER, "iat": now, "exp": now + 600, "type": "access"}
    intruder = RSAKey.generate_key(2048)
    forged = jwt.encode({"alg": "RS256", "kid": kid}, claims, intruder)
    unknown_kid = jwt.encode({"alg": "RS256", "kid": "not-a-known-key"}, claims, intruder)
    public_pem = ring.current.key.as_pem(private=False)
    signing_input = (
        f"{_b64(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{_b64(json.dumps(claims).encode())}"
    )
    hs256 = f"{signing_input}.{_b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())}"
    past = TokenIssuer(keys=ring, issuer=ISSUER, clock=lambda: time.time() - 7200).issue_pair(
        user_id=pair.user_id, email=None
    )
    wrong_issuer = jwt.encode(
        {"alg": "RS256", "kid": kid}, {**claims, "iss": "someone-else"}, ring.current.key
    )
    return {
        "forged signature": (forged, "TOKEN_BAD_SIGNATURE"),
        "expired": (past.access_token, "TOKEN_EXPIRED"),
        "alg none": (_hand_made({"alg": "none", "kid": kid}, claims), "TOKEN_UNSUPPORTED_ALG"),
        "hs256 with the public key": (hs256, "TOKEN_UNSUPPORTED_ALG"),
        "unknown kid": (unknown_kid, "TOKEN_UNKNOWN_KEY"),
        "refresh used as access": (pair.refresh_token, "TOKEN_WRONG_TYPE"),
        "wrong issuer": (wrong_issuer, "TOKEN_WRONG_ISSUER"),
        "garbage": ("not.a.jwt", "TOKEN_MALFORMED"),
    }


async def test_bad_tokens_are_refused_by_auth_and_by_other_services(mesh: Mesh) -> None:
    pair = await rpc_login(mesh)
    validator = auth_stub(mesh, as_workload="board")
    for name, (token, reason) in _bad_tokens(mesh, pair).items():
        with pytest.raises(grpc.aio.AioRpcError) as by_user:
            await _users(mesh).GetMyUser(user_pb2.GetMyUserRequest(), metadata=bearer(token))
        assert by_user.value.code() is grpc.StatusCode.UNAUTHENTICATED, name
        assert error_reason(by_user.value) == reason, name
        with pytest.raises(grpc.aio.AioRpcError) as by_auth:
            await validator.ValidateToken(auth_pb2.ValidateTokenRequest(token=token))
        assert by_auth.value.code() is grpc.StatusCode.UNAUTHENTICATED, name
        assert error_reason(by_auth.value) == reason, name


async def test_access_token_is_not_a_refresh_token(mesh: Mesh) -> None:
    pair = await rpc_login(mesh)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await auth_stub(mesh).RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=pair.access_token))
    assert error_reason(refused.value) == "TOKEN_WRONG_TYPE"


async def test_a_user_method_without_a_token_is_refused(mesh: Mesh) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _users(mesh).GetMyUser(user_pb2.GetMyUserRequest())
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(refused.value) == "TOKEN_MISSING"


async def test_check_token_always_answers(mesh: Mesh) -> None:
    pair = await rpc_login(mesh)
    auth = auth_stub(mesh)
    good = await auth.CheckToken(auth_pb2.CheckTokenRequest(token=pair.access_token))
    assert good.valid
    assert good.user_id == pair.user_id
    bad = await auth.CheckToken(auth_pb2.CheckTokenRequest(token=pair.refresh_token))
    assert not bad.valid
    assert bad.message
    empty = await auth.CheckToken(auth_pb2.CheckTokenRequest())
    assert not empty.valid


async def test_bad_input_names_the_field(mesh: Mesh) -> None:
    auth = auth_stub(mesh)
    cases = [
        (auth_pb2.IssueTestTokenRequest(email="not-an-email"), "email"),
        (auth_pb2.IssueTestTokenRequest(user_id="not-a-uuid"), "userId"),
        (auth_pb2.IssueTestTokenRequest(user_id="9b2f3c1e-0000-4000-8000-000000000000"), "userId"),
    ]
    for request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await auth.IssueTestToken(request)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(refused.value) == [field]
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await auth.RefreshToken(auth_pb2.RefreshTokenRequest())
    assert field_violations(missing.value) == ["refreshToken"]


async def test_test_login_for_an_existing_user_id(mesh: Mesh) -> None:
    pair = await rpc_login(mesh)
    again = await auth_stub(mesh).IssueTestToken(auth_pb2.IssueTestTokenRequest(user_id=pair.user_id))
    assert again.user_id == pair.user_id


async def test_dev_oauth_lands_on_the_web_callback_with_tokens(mesh: Mesh) -> None:
    email = unique_email("dev")
    auth = auth_stub(mesh)
    started = await auth.StartGoogleLogin(auth_pb2.StartGoogleLoginRequest(login_hint=email))
    landing = urlsplit(started.location)
    assert f"{landing.scheme}://{landing.netloc}{landing.path}" == "http://localhost:8088/oauth/callback"
    query = {key: values[0] for key, values in parse_qs(landing.query).items()}
    assert set(query) == {"accessToken", "refreshToken", "userId"}
    same = await rpc_login(mesh, email)
    assert query["userId"] == same.user_id
    me = await _users(mesh).GetMyUser(user_pb2.GetMyUserRequest(), metadata=bearer(query["accessToken"]))
    assert me.user.email == email


async def test_login_redirects_only_to_allowed_pages(mesh: Mesh) -> None:
    auth = auth_stub(mesh)
    allowed = await auth.StartGoogleLogin(
        auth_pb2.StartGoogleLoginRequest(redirect_uri="http://localhost:3000/oauth/callback")
    )
    assert allowed.location.startswith("http://localhost:3000/oauth/callback?")
    for hostile in ("https://evil.example/steal", "http://localhost:8088.evil.example/oauth/callback"):
        refused = await auth.StartGoogleLogin(auth_pb2.StartGoogleLoginRequest(redirect_uri=hostile))
        assert refused.location.startswith("http://localhost:8088/oauth/callback?"), hostile


async def test_discovery_and_status_documents(mesh: Mesh) -> None:
    auth = auth_stub(mesh)
    discovery = await auth.GetOpenidConfiguration(auth_pb2.GetOpenidConfigurationRequest())
    assert discovery.issuer == ISSUER
    assert discovery.jwks_uri.endswith("/.well-known/jwks.json")
    assert MessageToDict(discovery)["jwks_uri"] == discovery.jwks_uri
    status = await auth.GetTestStatus(auth_pb2.GetTestStatusRequest())
    assert status.test_auth_enabled
    ready = await auth.GetReadiness(auth_pb2.GetReadinessRequest())
    assert ready.status == "ready"
