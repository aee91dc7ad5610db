"""TokenVerifier: every way a token can be bad is refused with its own code; JWKS caching and refetching."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

import pytest
import redis.asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey
from joserfc.jws import JWSRegistry
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from devstack import free_port
from mesh._errors import Unauthenticated, Unavailable
from mesh._tokens import (
    BLACKLIST_PREFIX,
    TokenVerifier,
    account_closed_key,
    blacklist_key,
    close_account,
    parse_jwks,
    peek_header,
    reopen_account,
    revoke,
    revoke_once,
)
from services.auth.keys import KeyRing
from services.auth.tokens import TokenIssuer
from tests.support import CountingJwks, FakeClock

ISSUER = "wealist-auth-service"
USER = "5f0c2a52-9d57-4d2c-9a43-0d3b1f1f8a11"
RS256 = JWSRegistry(algorithms=["RS256"])

# --- fixtures (shared ones will move to conftest.py) ----------------------------------------------------


@pytest.fixture(scope="module")
def pem() -> bytes:
    """One RSA key for the module (generating 2048-bit keys is the slow part of these tests)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
def ring(pem: bytes, clock: FakeClock) -> KeyRing:
    return KeyRing.from_pem(pem, retire_after_seconds=604800, clock=clock)


@pytest.fixture
def jwks(ring: KeyRing) -> CountingJwks:
    return CountingJwks(ring)


@pytest.fixture
def verifier(jwks: CountingJwks, rds: redis.asyncio.Redis, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(jwks=jwks, redis=rds, issuer=ISSUER, clock=clock)


@pytest.fixture
def issuer(ring: KeyRing, clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(keys=ring, issuer=ISSUER, clock=clock)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64json(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _claims(clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": USER,
        "iss": ISSUER,
        "iat": int(clock.now),
        "exp": int(clock.now) + 600,
        "type": "access",
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(ring: KeyRing, claims: dict[str, Any], *, key: RSAKey | None = None, kid: str | None = None) -> str:
    """An RS256 token with the given claims, by default signed properly by the ring's current key."""
    header = {"alg": "RS256", "kid": kid or ring.current.kid}
    return jwt.encode(header, claims, key or ring.current.key, registry=RS256)


async def _refused(verifier: TokenVerifier, token: str, code: str, **kwargs: Any) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token, **kwargs)
    assert caught.value.code == code, caught.value.message
    return caught.value


# --- the good path ------------------------------------------------------------------------------------


async def test_issued_access_token_verifies_with_its_claims(
    verifier: TokenVerifier, issuer: TokenIssuer, ring: KeyRing, clock: FakeClock
) -> None:
    pair = issuer.issue_pair(user_id=USER, email="kim@wealist.co.kr")

    claims = await verifier.verify(pair.access_token)

    assert claims.user_id == USER
    assert claims.email == "kim@wealist.co.kr"
    assert claims.token_type == "access"
    assert claims.issued_at == int(clock.now)
    assert claims.expires_at == pair.access_expires_at == int(clock.now) + 1800
    assert claims.key_id == ring.current.kid
    assert claims.token == pair.access_token


async def test_refresh_token_verifies_as_refresh(verifier: TokenVerifier, issuer: TokenIssuer) -> None:
    pair = issuer.issue_pair(user_id=USER, email=None)

    claims = await verifier.verify(pair.refresh_token, expected_type="refresh")

    assert claims.token_type == "refresh"
    assert claims.email is None
    assert claims.expires_at == pair.refresh_expires_at


async def test_leeway_accepts_a_token_just_past_exp(
    jwks: CountingJwks, rds: redis.asyncio.Redis, ring: KeyRing, clock: FakeClock
) -> None:
    lenient = TokenVerifier(jwks=jwks, redis=rds, issuer=ISSUER, leeway_seconds=30, clock=clock)
    token = _sign(ring, _claims(clock, exp=int(clock.now) - 10))

    assert (await lenient.verify(token)).user_id == USER
    clock.advance(25)
    await _refused(lenient, token, "TOKEN_EXPIRED")


# --- refused tokens, each with its code --------------------------------------------------------------


async def test_missing_token(verifier: TokenVerifier, jwks: CountingJwks) -> None:
    await _refused(verifier, "", "TOKEN_MISSING")
    assert jwks.fetches == 0


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b", "a.b.c.d", "!!!.e30.sig", "e30.e30.sig", "W10.e30.sig", "한글.e30.x", "x" * 200_000],
)
async def test_malformed_token(verifier: TokenVerifier, jwks: CountingJwks, token: str) -> None:
    await _refused(verifier, token, "TOKEN_MALFORMED")
    assert jwks.fetches == 0


async def test_forged_signature_with_the_real_kid(
    verifier: TokenVerifier, ring: KeyRing, clock: FakeClock
) -> None:
    other = RSAKey.generate_key(2048)
    forged = _sign(ring, _claims(clock), key=other, kid=ring.current.kid)

    await _refused(verifier, forged, "TOKEN_BAD_SIGNATURE")


async def test_tampered_payload(verifier: TokenVerifier, issuer: TokenIssuer) -> None:
    header, payload, signature = issuer.issue_pair(user_id=USER, email=None).access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = str(uuid.uuid4())

    await _refused(verifier, f"{header}.{_b64json(claims)}.{signature}", "TOKEN_BAD_SIGNATURE")


async def test_expired(verifier: TokenVerifier, issuer: TokenIssuer, clock: FakeClock) -> None:
    pair = issuer.issue_pair(user_id=USER, email=None)
    clock.advance(1800)  # exp == now: "on or after exp" is expired

    await _refused(verifier, pair.access_token, "TOKEN_EXPIRED")


async def test_alg_none_refused_before_any_key_lookup(
    verifier: TokenVerifier, jwks: CountingJwks, ring: KeyRing, clock: FakeClock
) -> None:
    for alg in ("none", "None", "NONE"):
        token = f"{_b64json({'typ': 'JWT', 'alg': alg, 'kid': ring.current.kid})}.{_b64json(_claims(clock))}."
        await _refused(verifier, token, "TOKEN_UNSUPPORTED_ALG")
    assert jwks.fetches == 0


async def test_hs256_signed_with_the_public_key_as_secret(
    verifier: TokenVerifier, jwks: CountingJwks, ring: KeyRing, clock: FakeClock
) -> None:
    public_pem = ring.current.key.as_pem(private=False)
    header = {"typ": "JWT", "alg": "HS256", "kid": ring.current.kid}
    signing_input = f"{_b64json(header)}.{_b64json(_claims(clock))}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()

    await _refused(verifier, f"{signing_input}.{_b64(mac)}", "TOKEN_UNSUPPORTED_ALG")
    assert jwks.fetches == 0


@pytest.mark.parametrize("alg", ["RS512", "PS256", "ES256", "HS512", "EdDSA", "rs256", None])
async def test_other_algorithms(
    verifier: TokenVerifier, jwks: CountingJwks, ring: KeyRing, clock: FakeClock, alg: str | None
) -> None:
    header = {"typ": "JWT", "kid": ring.current.kid} | ({"alg": alg} if alg else {})
    token = f"{_b64json(header)}.{_b64json(_claims(clock))}.{_b64(b'x' * 256)}"

    # a header without "alg" is not a JWS at all
    await _refused(verifier, token, "TOKEN_UNSUPPORTED_ALG" if alg else "TOKEN_MALFORMED")
    assert jwks.fetches == 0


async def test_missing_kid(verifier: TokenVerifier, ring: KeyRing, clock: FakeClock) -> None:
    token = jwt.encode({"alg": "RS256"}, _claims(clock), ring.current.key, registry=RS256)

    await _refused(verifier, token, "TOKEN_MALFORMED")


async def test_wrong_issuer(verifier: TokenVerifier, ring: KeyRing, clock: FakeClock) -> None:
    await _refused(verifier, _sign(ring, _claims(clock, iss="someone-else")), "TOKEN_WRONG_ISSUER")
    await _refused(verifier, _sign(ring, _claims(clock, iss=None)), "TOKEN_WRONG_ISSUER")


@pytest.mark.parametrize("sub", [None, "", "not-a-uuid", 42])
async def test_missing_or_bad_sub(verifier: TokenVerifier, ring: KeyRing, clock: FakeClock, sub: Any) -> None:
    claims = _claims(clock)
    if sub is None:
        del claims["sub"]
    else:
        claims["sub"] = sub

    await _refused(verifier, _sign(ring, claims), "TOKEN_MALFORMED")


@pytest.mark.parametrize("exp", [None, "soon", True, 1e400])
async def test_missing_or_bad_exp(verifier: TokenVerifier, ring: KeyRing, clock: FakeClock, exp: Any) -> None:
    claims = _claims(clock)
    if exp is None:
        del claims["exp"]
    else:
        claims["exp"] = exp

    await _refused(verifier, _sign(ring, claims), "TOKEN_MALFORMED")


async def test_refresh_used_as_access(verifier: TokenVerifier, issuer: TokenIssuer) -> None:
    pair = issuer.issue_pair(user_id=USER, email=None)

    await _refused(verifier, pair.refresh_token, "TOKEN_WRONG_TYPE")
    await _refused(verifier, pair.refresh_token, "TOKEN_WRONG_TYPE", expected_type="access")


async def test_access_used_as_refresh(verifier: TokenVerifier, issuer: TokenIssuer) -> None:
    pair = issuer.issue_pair(user_id=USER, email=None)

    await _refused(verifier, pair.access_token, "TOKEN_WRONG_TYPE", expected_type="refresh")


async def test_token_without_type(verifier: TokenVerifier, ring: KeyRing, clock: FakeClock) -> None:
    await _refused(verifier, _sign(ring, _claims(clock, type=None)), "TOKEN_WRONG_TYPE")


async def test_unknown_expected_type_is_a_programming_error(
    verifier: TokenVerifier, issuer: TokenIssuer
) -> None:
    with pytest.raises(ValueError, match="expected_type"):
        await verifier.verify(issuer.issue_pair(user_id=USER, email=None).access_token, expected_type="id")  # type: ignore[arg-type]


# --- the blacklist ------------------------------------------------------------------------------------


async def test_revoked_token_is_refused(
    verifier: TokenVerifier, issuer: TokenIssuer, rds: redis.asyncio.Redis, clock: FakeClock
) -> None:
    pair = issuer.issue_pair(user_id=USER, email=None)
    await verifier.verify(pair.access_token)

    await revoke(rds, pair.access_token, expires_at=pair.access_expires_at, clock=clock)

    await _refused(verifier, pair.access_token, "TOKEN_REVOKED")
    # the other token of the pair is untouched
    assert (await verifier.verify(pair.refresh_token, expected_type="refresh")).user_id == USER


async def test_blacklist_key_is_a_hash_with_the_remaining_lifetime_as_ttl(
    issuer: TokenIssuer, rds: redis.asyncio.Redis, clock: FakeClock
) -> None:
    pair = issuer.issue_pair(user_id=USER, email=None)
    key = blacklist_key(pair.access_token)
    assert key == BLACKLIST_PREFIX + hashlib.sha256(pair.access_token.encode()).hexdigest()
    assert pair.access_token not in key

    clock.advance(600)
    await revoke(rds, pair.access_token, expires_at=pair.access_expires_at, clock=clock)

    assert 1190_000 <= await rds.pttl(key) <= 1200_000  # 1800 s lifetime - 600 s gone
    assert await rds.exists(pair.access_token) == 0  # never the raw JWT as a key


async def test_revoking_an_expired_token_writes_nothing(
    issuer: TokenIssuer, rds: redis.asyncio.Redis, clock: FakeClock
) -> None:
    pair = issuer.issue_pair(user_id=USER, email=None)
    clock.advance(1800)

    await revoke(rds, pair.access_token, expires_at=pair.access_expires_at, clock=clock)

    assert await rds.exists(blacklist_key(pair.access_token)) == 0


async def test_revoke_once_claims_exactly_once(
    issuer: TokenIssuer, rds: redis.asyncio.Redis, clock: FakeClock
) -> None:
    pair = issuer.issue_pair(user_id=USER, email=None)

    results = await asyncio.gather(
        *(
            revoke_once(rds, pair.refresh_token, expires_at=pair.refresh_expires_at, clock=clock)
            for _ in range(10)
        )
    )

    assert sorted(results) == [False] * 9 + [True]


async def test_a_closed_accounts_tokens_reach_only_the_methods_that_reopen_it(
    verifier: TokenVerifier, issuer: TokenIssuer, rds: redis.asyncio.Redis, clock: FakeClock
) -> None:
    other = str(uuid.uuid4())
    pair = issuer.issue_pair(user_id=USER, email=None)
    bystander = issuer.issue_pair(user_id=other, email=None)

    await close_account(rds, USER)

    await _refused(verifier, pair.access_token, "ACCOUNT_CLOSED")
    assert (await verifier.verify(pair.access_token, closed_account_allowed=True)).user_id == USER
    assert (await verifier.verify(bystander.access_token)).user_id == other
    # A logged-out token stays refused even where a closed account is let in.
    await revoke(rds, pair.access_token, expires_at=pair.access_expires_at, clock=clock)
    await _refused(verifier, pair.access_token, "TOKEN_REVOKED", closed_account_allowed=True)

    await reopen_account(rds, USER)

    assert await rds.exists(account_closed_key(USER)) == 0
    assert (await verifier.verify(pair.refresh_token, expected_type="refresh")).user_id == USER


async def test_redis_down_fails_closed(jwks: CountingJwks, issuer: TokenIssuer, clock: FakeClock) -> None:
    dead = redis.asyncio.Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    verifier = TokenVerifier(jwks=jwks, redis=dead, issuer=ISSUER, clock=clock)
    try:
        with pytest.raises(Unavailable):
            await verifier.verify(issuer.issue_pair(user_id=USER, email=None).access_token)
    finally:
        await dead.aclose()


# --- JWKS caching, refetching, rate limiting ---------------------------------------------------------


async def test_jwks_is_cached_for_cache_seconds(
    verifier: TokenVerifier, jwks: CountingJwks, issuer: TokenIssuer, clock: FakeClock
) -> None:
    for _ in range(5):
        await verifier.verify(issuer.issue_pair(user_id=USER, email=None).access_token)
    assert jwks.fetches == 1

    clock.advance(299)
    await verifier.verify(issuer.issue_pair(user_id=USER, email=None).access_token)
    assert jwks.fetches == 1

    clock.advance(1)
    await verifier.verify(issuer.issue_pair(user_id=USER, email=None).access_token)
    assert jwks.fetches == 2


async def test_unknown_kid_refetches_once_and_is_rate_limited(
    verifier: TokenVerifier, jwks: CountingJwks, ring: KeyRing, clock: FakeClock
) -> None:
    await verifier.verify(_sign(ring, _claims(clock)))
    assert jwks.fetches == 1

    clock.advance(5)  # the refetch interval has passed: the first unknown kid refetches once ...
    for i in range(50):  # ... and a flood of made-up kids does not hammer auth
        error = await _refused(verifier, _sign(ring, _claims(clock), kid=f"bogus-{i}"), "TOKEN_UNKNOWN_KEY")
        assert "bogus" in error.message
    assert jwks.fetches == 2

    clock.advance(4.9)
    await _refused(verifier, _sign(ring, _claims(clock), kid="bogus-again"), "TOKEN_UNKNOWN_KEY")
    assert jwks.fetches == 2
    clock.advance(0.1)
    await _refused(verifier, _sign(ring, _claims(clock), kid="bogus-again"), "TOKEN_UNKNOWN_KEY")
    assert jwks.fetches == 3


async def test_unknown_kid_on_a_cold_cache_does_not_fetch_twice(
    verifier: TokenVerifier, jwks: CountingJwks, ring: KeyRing, clock: FakeClock
) -> None:
    await _refused(verifier, _sign(ring, _claims(clock), kid="bogus"), "TOKEN_UNKNOWN_KEY")

    assert jwks.fetches == 1  # the fetch that filled the cache is as fresh as a refetch would be


async def test_a_key_rotated_in_after_the_last_fetch_is_found_by_the_refetch(
    verifier: TokenVerifier, jwks: CountingJwks, ring: KeyRing, issuer: TokenIssuer, clock: FakeClock
) -> None:
    await verifier.verify(issuer.issue_pair(user_id=USER, email=None).access_token)
    ring.rotate()
    clock.advance(10)

    claims = await verifier.verify(issuer.issue_pair(user_id=USER, email=None).access_token)

    assert claims.key_id == ring.current.kid
    assert jwks.fetches == 2


async def test_concurrent_verifications_share_one_fetch(
    verifier: TokenVerifier, jwks: CountingJwks, issuer: TokenIssuer
) -> None:
    jwks.gate = asyncio.Event()
    tokens = [issuer.issue_pair(user_id=str(uuid.uuid4()), email=None).access_token for _ in range(20)]
    pending = [asyncio.create_task(verifier.verify(t)) for t in tokens]
    await asyncio.sleep(0.01)
    assert jwks.fetches == 1

    jwks.gate.set()
    results = await asyncio.gather(*pending)

    assert [r.token for r in results] == tokens
    assert jwks.fetches == 1


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(
    verifier: TokenVerifier, jwks: CountingJwks, issuer: TokenIssuer
) -> None:
    jwks.gate = asyncio.Event()
    token = issuer.issue_pair(user_id=USER, email=None).access_token
    impatient = asyncio.create_task(verifier.verify(token))
    patient = asyncio.create_task(verifier.verify(token))
    await asyncio.sleep(0.01)

    impatient.cancel()
    jwks.gate.set()

    assert (await patient).user_id == USER
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert jwks.fetches == 1


async def test_jwks_unreachable_with_no_keys_is_unavailable_and_not_hammered(
    verifier: TokenVerifier, jwks: CountingJwks, issuer: TokenIssuer, clock: FakeClock
) -> None:
    token = issuer.issue_pair(user_id=USER, email=None).access_token
    jwks.fail = True

    for _ in range(10):
        with pytest.raises(Unavailable):
            await verifier.verify(token)
    assert jwks.fetches == 1

    jwks.fail = False
    clock.advance(5)
    assert (await verifier.verify(token)).user_id == USER
    assert jwks.fetches == 2


async def test_jwks_unreachable_keeps_the_known_keys(
    verifier: TokenVerifier, jwks: CountingJwks, issuer: TokenIssuer, clock: FakeClock
) -> None:
    await verifier.verify(issuer.issue_pair(user_id=USER, email=None).access_token)
    jwks.fail = True
    clock.advance(300)  # cache expired, refetch fails

    for _ in range(5):
        token = issuer.issue_pair(user_id=USER, email=None).access_token
        assert (await verifier.verify(token)).user_id == USER
    assert jwks.fetches == 2


def test_parse_jwks_keeps_rs256_signing_keys_only_and_reuses_unchanged_ones(ring: KeyRing) -> None:
    good = ring.jwks()["keys"][0]
    small_n = _b64(((1 << 1023) | 1).to_bytes(128, "big"))  # a 1024-bit modulus is refused before import
    document = {
        "keys": [
            good,
            good | {"kid": "enc", "use": "enc"},
            good | {"kid": "ps", "alg": "PS256"},
            {k: v for k, v in good.items() if k != "kid"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            good | {"kid": "small", "n": small_n},
            good | {"kid": "broken", "n": "!!"},
            "not a key",
        ]
    }

    keys = parse_jwks(document)
    assert list(keys) == [good["kid"]]

    again = parse_jwks(ring.jwks(), keys)
    assert again[good["kid"]] is keys[good["kid"]]  # the parsed key object is reused, not re-imported

    with pytest.raises(ValueError, match="keys"):
        parse_jwks({"nokeys": []})


# --- peek_header ----------------------------------------------------------------------------------------


def test_peek_header(issuer: TokenIssuer, ring: KeyRing) -> None:
    token = issuer.issue_pair(user_id=USER, email=None).access_token

    assert peek_header(token) == {"typ": "JWT", "alg": "RS256", "kid": ring.current.kid}


@pytest.mark.parametrize("token", ["", "abc", "a.b", "%%%.b.c", "W10.b.c", "bm90IGpzb24.b.c", "é.b.c"])
def test_peek_header_refuses_garbage(token: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        peek_header(token)
    assert caught.value.code == "TOKEN_MALFORMED"
