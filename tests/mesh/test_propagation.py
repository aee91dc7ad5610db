"""What a service's outgoing calls inherit from the call it is serving."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from mesh import CallContext, Unauthenticated, UserClaims
from mesh._channels import _propagated, service_config
from mesh._context import _current
from mesh._interceptors import bearer_token


def _details(timeout: float | None = None) -> grpc.aio.ClientCallDetails:
    return grpc.aio.ClientCallDetails(
        method="/wealist.user.v1.UserInternalService/CheckUserExists",
        timeout=timeout,
        metadata=grpc.aio.Metadata(),
        credentials=None,
        wait_for_ready=None,
    )


def _serving(deadline_in: float | None, user: UserClaims | None = None) -> CallContext:
    loop = asyncio.get_running_loop()
    return CallContext(
        method="/wealist.auth.v1.AuthService/IssueTestToken",
        request_id="req-1",
        caller="gateway",
        user=user,
        deadline=loop.time() + deadline_in if deadline_in is not None else None,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


async def test_outgoing_calls_never_outlive_the_served_call() -> None:
    token = _current.set(_serving(2.0))
    try:
        unlimited = _propagated(_details())
        generous = _propagated(_details(timeout=30.0))
        tight = _propagated(_details(timeout=0.5))
    finally:
        _current.reset(token)
    assert unlimited.timeout is not None
    assert 1.5 < unlimited.timeout <= 2.0
    assert generous.timeout is not None
    assert generous.timeout <= 2.0
    assert tight.timeout == 0.5


async def test_request_id_trace_and_user_token_are_forwarded() -> None:
    user = UserClaims(
        user_id="u", email=None, token_type="access", issued_at=0, expires_at=1, key_id="k", token="tok"
    )
    token = _current.set(_serving(None, user))
    try:
        details = _propagated(_details())
    finally:
        _current.reset(token)
    metadata = dict(details.metadata or ())
    assert metadata["x-request-id"] == "req-1"
    assert str(metadata["traceparent"]).startswith("00-0af7")
    assert metadata["authorization"] == "Bearer tok"
    assert details.timeout is None


async def test_outside_a_served_call_nothing_is_added() -> None:
    details = _propagated(_details(timeout=1.0))
    assert details.timeout == 1.0
    assert list(details.metadata or ()) == []


def test_retries_only_for_idempotent_methods() -> None:
    config = json.loads(service_config("user"))
    names = [name for entry in config["methodConfig"] for name in entry["name"]]
    assert {"service": "wealist.user.v1.UserInternalService", "method": "CheckUserExists"} in names
    assert {"service": "wealist.user.v1.UserInternalService", "method": "FindOrCreateOAuthUser"} in names
    auth_names = [n for e in json.loads(service_config("auth"))["methodConfig"] for n in e["name"]]
    assert {"service": "wealist.auth.v1.AuthService", "method": "RefreshToken"} not in auth_names
    assert {"service": "wealist.auth.v1.AuthService", "method": "GetJwks"} in auth_names


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER abc", "abc")],
)
def test_bearer_token_parsing(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer a b", "abc"])
def test_malformed_authorization_is_refused(header: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        bearer_token(header)
    assert refused.value.code == "TOKEN_MALFORMED"
