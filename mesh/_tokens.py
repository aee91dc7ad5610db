"""End-user token verification, shared by every service and by the gateway.

auth issues RS256 JWTs (``sub`` = user id, ``iss`` = ``wealist-auth-service``, ``type`` = access/refresh,
``kid`` in the header) and publishes its public keys as a JWKS. :class:`TokenVerifier` checks a token
against that JWKS and against the revocation list in Redis, in this order, each failure an
:class:`~mesh._errors.Unauthenticated` with its own machine code:

1. the token is present (``TOKEN_MISSING``) and is a compact JWS (``TOKEN_MALFORMED``);
2. the header's ``alg`` is RS256 — ``none``, HS256 (the "public key as HMAC secret" confusion) and every
   other algorithm are refused before any key is looked up (``TOKEN_UNSUPPORTED_ALG``);
3. the header's ``kid`` names a key of the JWKS; an unknown ``kid`` refetches the JWKS once, no more often
   than ``min_refetch_interval`` so that a flood of made-up kids cannot hammer auth (``TOKEN_UNKNOWN_KEY``);
4. the signature (``TOKEN_BAD_SIGNATURE``);
5. ``iss`` (``TOKEN_WRONG_ISSUER``), ``exp`` (``TOKEN_EXPIRED``), ``sub`` (``TOKEN_MALFORMED``),
   ``type`` — access and refresh tokens are not interchangeable (``TOKEN_WRONG_TYPE``);
6. the blacklist: Redis holds :func:`blacklist_key` of a revoked token until it would have expired
   (``TOKEN_REVOKED``);
7. the session: both tokens of one login carry the same ``sid``, kept through every refresh; logging out
   puts :func:`session_ended_key` in Redis for as long as any token of that session can live, and every
   token of the session is refused (``SESSION_ENDED``), whichever of them the logout was given;
8. the account: Redis holds :func:`account_closed_key` of a deleted account until it is restored, and
   its tokens are refused (``ACCOUNT_CLOSED``) except by the methods that restore it.

Steps 6 to 8 are one ``MGET``: one Redis round trip per check, whatever it looks at.

The JOSE work (base64url, header checks, RSASSA-PKCS1-v1_5 verification) is done by ``joserfc``, the JOSE
library of the Authlib project that ``authlib.jose`` (deprecated since Authlib 1.7) points to.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import redis.asyncio
import redis.exceptions
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from joserfc.jws import JWSRegistry
from joserfc.util import urlsafe_b64decode

from mesh._errors import Unauthenticated, Unavailable

__all__ = [
    "ALGORITHM",
    "BLACKLIST_PREFIX",
    "DEFAULT_ISSUER",
    "JwksSource",
    "TokenType",
    "TokenVerifier",
    "UserClaims",
    "account_closed_key",
    "blacklist_key",
    "close_account",
    "end_sessions",
    "parse_jwks",
    "peek_header",
    "reopen_account",
    "revocation_ttl_ms",
    "revoke",
    "revoke_once",
    "session_ended_key",
]

_log = logging.getLogger(__name__)

#: The one signing algorithm auth uses and verifiers accept.
ALGORITHM = "RS256"
#: ``iss`` of every token auth issues (``JWT_ISSUER`` in the original).
DEFAULT_ISSUER = "wealist-auth-service"
#: Prefix of the Redis keys that mark a revoked token.
BLACKLIST_PREFIX = "auth:revoked:"
#: Prefix of the Redis keys that mark a deleted account.
ACCOUNT_CLOSED_PREFIX = "auth:account-closed:"
#: Prefix of the Redis keys that mark a logged-out session.
SESSION_ENDED_PREFIX = "auth:session-ended:"
#: Smallest RSA modulus accepted from a JWKS (NIST SP 800-131A).
MIN_RSA_BITS = 2048

TokenType = Literal["access", "refresh"]
_TOKEN_TYPES: frozenset[str] = frozenset({"access", "refresh"})

# A registry that knows RS256 only: even if a token reached joserfc with another "alg", it would be refused.
_REGISTRY = JWSRegistry(algorithms=[ALGORITHM])


@dataclass(frozen=True, slots=True)
class UserClaims:
    """What a verified token says about its user."""

    user_id: str
    """``sub``: the user's UUID as a string."""
    email: str | None
    token_type: str
    """``"access"`` or ``"refresh"``."""
    issued_at: int
    expires_at: int
    key_id: str
    token: str
    """The raw JWT, for forwarding to other services and for revoking it."""
    session_id: str | None = None
    """``sid``: the login this token belongs to, shared by its access and refresh tokens and kept through
    every refresh; ``None`` for tokens issued before sessions existed."""


class JwksSource(Protocol):
    """Where the verifier gets auth's public keys (over gRPC/HTTP, or in-process in auth itself)."""

    async def fetch_jwks(self) -> dict[str, Any]:
        """Return a JWKS document, ``{"keys": [...]}``."""
        ...


def _fail(code: str, message: str) -> Unauthenticated:
    return Unauthenticated(message, code=code)


def blacklist_key(token: str) -> str:
    """The Redis key marking ``token`` as revoked: a prefix and the SHA-256 of the token.

    The original used the raw JWT as the key; hashing keeps keys short and keeps bearer tokens out of
    ``KEYS``/``MONITOR`` output and RDB dumps.
    """
    return BLACKLIST_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def session_ended_key(session_id: str) -> str:
    """The Redis key marking the login session ``session_id`` as logged out."""
    return SESSION_ENDED_PREFIX + session_id


async def end_sessions(
    redis_client: redis.asyncio.Redis,
    session_ids: Sequence[str],
    *,
    lifetime_seconds: int,
    revoked: Sequence[UserClaims] = (),
    clock: Callable[[], float] = time.time,
    leeway_seconds: int = 0,
) -> None:
    """Log out whole sessions, and blacklist the ``revoked`` tokens themselves, in one round trip.

    ``lifetime_seconds`` is the longest a token of these sessions can still be valid for (auth's refresh
    lifetime: every refresh starts a new one), so the mark outlives every token it has to refuse. The
    tokens are blacklisted too for those issued before sessions existed, which carry no ``sid``.
    """
    async with redis_client.pipeline(transaction=False) as pipe:
        for session_id in session_ids:
            pipe.set(session_ended_key(session_id), b"1", ex=lifetime_seconds + leeway_seconds)
        for claims in revoked:
            ttl = revocation_ttl_ms(claims.expires_at, leeway_seconds=leeway_seconds, clock=clock)
            if ttl is not None:
                pipe.set(blacklist_key(claims.token), b"1", px=ttl)
        await pipe.execute()


def account_closed_key(user_id: str) -> str:
    """The Redis key marking the account ``user_id`` as deleted."""
    return ACCOUNT_CLOSED_PREFIX + user_id


async def close_account(redis_client: redis.asyncio.Redis, user_id: str) -> None:
    """Refuse the tokens of ``user_id`` everywhere but where it is restored, until :func:`reopen_account`.

    No expiry: a refresh token outlives any access token, and the account stays deleted until restored.
    """
    await redis_client.set(account_closed_key(user_id), b"1")


async def reopen_account(redis_client: redis.asyncio.Redis, user_id: str) -> None:
    """Accept the tokens of ``user_id`` again (its account was restored)."""
    await redis_client.delete(account_closed_key(user_id))


def revocation_ttl_ms(
    expires_at: int, *, leeway_seconds: int = 0, clock: Callable[[], float] = time.time
) -> int | None:
    """How long (ms) a blacklist entry must live: until the token expires for every verifier; ``None`` if
    it already has."""
    remaining = expires_at + leeway_seconds - clock()
    if remaining <= 0:
        return None
    return max(1, math.ceil(remaining * 1000))


async def revoke(
    redis_client: redis.asyncio.Redis,
    token: str,
    *,
    expires_at: int,
    clock: Callable[[], float] = time.time,
    leeway_seconds: int = 0,
) -> None:
    """Put ``token`` on the blacklist until it expires (plus ``leeway_seconds``, the verifiers' clock leeway).

    A token that has already expired is refused anyway, so nothing is written for it.
    """
    ttl = revocation_ttl_ms(expires_at, leeway_seconds=leeway_seconds, clock=clock)
    if ttl is None:
        return
    await redis_client.set(blacklist_key(token), b"1", px=ttl)


async def revoke_once(
    redis_client: redis.asyncio.Redis,
    token: str,
    *,
    expires_at: int,
    clock: Callable[[], float] = time.time,
    leeway_seconds: int = 0,
) -> bool:
    """Revoke ``token`` unless it is revoked already; ``True`` when this call was the one that revoked it.

    ``SET NX`` makes this the claim of a single-use token: of two concurrent callers exactly one gets
    ``True``. An expired token cannot be claimed (``False``).
    """
    ttl = revocation_ttl_ms(expires_at, leeway_seconds=leeway_seconds, clock=clock)
    if ttl is None:
        return False
    return bool(await redis_client.set(blacklist_key(token), b"1", px=ttl, nx=True))


def peek_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, parsed but NOT verified (``TOKEN_MALFORMED`` on garbage)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise _fail("TOKEN_MALFORMED", "token is not a compact JWS")
    try:
        header = json.loads(urlsafe_b64decode(parts[0].encode("ascii")))
    except (UnicodeError, ValueError) as error:  # binascii.Error and JSONDecodeError are ValueErrors
        raise _fail("TOKEN_MALFORMED", "token header is not base64url JSON") from error
    if not isinstance(header, dict):
        raise _fail("TOKEN_MALFORMED", "token header is not a JSON object")
    return header


def _rsa_bits(modulus: str) -> int:
    return int.from_bytes(urlsafe_b64decode(modulus.encode("ascii")), "big").bit_length()


def parse_jwks(
    document: Mapping[str, Any], previous: Mapping[str, RSAKey] | None = None
) -> dict[str, RSAKey]:
    """The RS256 signing keys of a JWKS document, by ``kid``.

    Entries that are not RSA signature keys usable with RS256, have no ``kid``, or are smaller than 2048
    bits are skipped (logged), not fatal: one odd key must not take the others down. A key whose ``n`` and
    ``e`` are unchanged from ``previous`` is reused rather than imported again.
    """
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError("JWKS document has no 'keys' list")
    keys: dict[str, RSAKey] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid, n, e = entry.get("kid"), entry.get("n"), entry.get("e")
        if (
            entry.get("kty") != "RSA"
            or entry.get("use", "sig") != "sig"
            or entry.get("alg", ALGORITHM) != ALGORITHM
            or not isinstance(kid, str)
            or not kid
            or not isinstance(n, str)
            or not isinstance(e, str)
        ):
            _log.warning("JWKS: skipping a key that is not an RS256 signing key with a kid: %r", kid)
            continue
        old = previous.get(kid) if previous else None
        if old is not None and old.get("n") == n and old.get("e") == e:
            keys[kid] = old
            continue
        try:
            if _rsa_bits(n) < MIN_RSA_BITS:
                _log.warning("JWKS: skipping key %r, smaller than %d bits", kid, MIN_RSA_BITS)
                continue
            keys[kid] = RSAKey.import_key(
                {"kty": "RSA", "n": n, "e": e}, {"kid": kid, "use": "sig", "alg": ALGORITHM}
            )
        except (JoseError, ValueError) as error:
            _log.warning("JWKS: skipping key %r that does not import: %s", kid, error)
    return keys


def _numeric_date(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    # bool is an int subclass; JSON true is not a date.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail("TOKEN_MALFORMED", f"token claim '{name}' is missing or not a NumericDate")
    return int(value)


class TokenVerifier:
    """Verifies end-user JWTs against auth's JWKS and the Redis blacklist.

    One instance per process: it caches the parsed public keys (per ``kid``) for ``cache_seconds``, and
    concurrent callers that need a fetch share a single in-flight request. When a refetch fails, the keys
    already known stay in use (auth being briefly unreachable must not log everybody out); with no keys at
    all the call fails with ``Unavailable``. Failed fetches are not retried more often than
    ``min_refetch_interval``.
    """

    def __init__(
        self,
        *,
        jwks: JwksSource,
        redis: redis.asyncio.Redis,
        issuer: str = DEFAULT_ISSUER,
        cache_seconds: float = 300.0,
        min_refetch_interval: float = 5.0,
        leeway_seconds: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = jwks
        self._redis = redis
        self.issuer = issuer
        self.leeway_seconds = leeway_seconds
        self._cache_seconds = cache_seconds
        self._min_refetch_interval = min_refetch_interval
        self._clock = clock
        self._keys: dict[str, RSAKey] = {}
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._inflight: asyncio.Task[None] | None = None

    async def verify(
        self, token: str, *, expected_type: TokenType = "access", closed_account_allowed: bool = False
    ) -> UserClaims:
        """Verify ``token`` completely, blacklist and account included; the claims, or ``Unauthenticated``.

        ``closed_account_allowed`` is for the methods that restore a deleted account, which its own
        token must still reach.
        """
        claims = await self.verify_stateless(token, expected_type=expected_type)
        await self.check_standing(claims, closed_account_allowed=closed_account_allowed)
        return claims

    async def check_standing(self, claims: UserClaims, *, closed_account_allowed: bool = False) -> None:
        """``Unauthenticated`` when a verified token has since been revoked, its session logged out or its
        account deleted.

        Redis only, one round trip: the signature and expiry are not looked at again. A long-lived stream
        calls it now and then to end when its user logs out (``verify`` calls it once).
        """
        keys = [blacklist_key(claims.token), account_closed_key(claims.user_id)]
        if claims.session_id is not None:
            keys.append(session_ended_key(claims.session_id))
        try:
            revoked, closed, *ended = await self._redis.mget(keys)
        except redis.exceptions.RedisError as error:
            # Fail closed: without the blacklist a logged-out token would pass.
            raise Unavailable("token blacklist unavailable") from error
        if revoked is not None:
            raise _fail("TOKEN_REVOKED", "token has been revoked")
        if ended and ended[0] is not None:
            raise _fail("SESSION_ENDED", "the session of this token has been logged out")
        if closed is not None and not closed_account_allowed:
            raise _fail("ACCOUNT_CLOSED", "the account has been deleted")

    async def verify_stateless(self, token: str, *, expected_type: TokenType = "access") -> UserClaims:
        """Everything :meth:`verify` checks except the blacklist.

        For auth's own refresh/logout, which write the blacklist entry themselves (``SET NX``) and so
        save a Redis round trip. Anyone else wants :meth:`verify`.
        """
        if expected_type not in _TOKEN_TYPES:
            raise ValueError(f"expected_type must be 'access' or 'refresh', not {expected_type!r}")
        if not token:
            raise _fail("TOKEN_MISSING", "no token")
        try:
            obj = jws.extract_compact(token.encode("ascii"), registry=_REGISTRY)
        except (JoseError, UnicodeError, ValueError) as error:
            raise _fail("TOKEN_MALFORMED", "token is not a well-formed JWS") from error
        header = obj.headers()
        if not isinstance(header, dict):
            raise _fail("TOKEN_MALFORMED", "token header is not a JSON object")
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise _fail("TOKEN_UNSUPPORTED_ALG", f"token algorithm {alg!r} is not accepted, only {ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _fail("TOKEN_MALFORMED", "token header has no 'kid'")

        key = await self._key_for(kid)
        try:
            valid = jws.validate_compact(obj, key, registry=_REGISTRY)
        except JoseError as error:  # e.g. an unknown "crit" header
            raise _fail("TOKEN_MALFORMED", f"token header is not acceptable: {error}") from error
        if not valid:
            raise _fail("TOKEN_BAD_SIGNATURE", "token signature does not verify")

        try:
            claims = json.loads(obj.payload)
        except ValueError as error:
            raise _fail("TOKEN_MALFORMED", "token payload is not JSON") from error
        if not isinstance(claims, dict):
            raise _fail("TOKEN_MALFORMED", "token payload is not a JSON object")
        return self._check_claims(claims, expected_type, kid, token)

    def _check_claims(
        self, claims: dict[str, Any], expected_type: TokenType, kid: str, token: str
    ) -> UserClaims:
        if claims.get("iss") != self.issuer:
            raise _fail("TOKEN_WRONG_ISSUER", "token was not issued by " + self.issuer)
        expires_at = _numeric_date(claims, "exp")
        if expires_at <= self._clock() - self.leeway_seconds:
            raise _fail("TOKEN_EXPIRED", "token has expired")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise _fail("TOKEN_MALFORMED", "token has no 'sub'")
        try:
            uuid.UUID(sub)
        except ValueError as error:
            raise _fail("TOKEN_MALFORMED", "token 'sub' is not a UUID") from error
        token_type = claims.get("type")
        if token_type != expected_type:
            raise _fail("TOKEN_WRONG_TYPE", f"a {expected_type} token is required, got {token_type!r}")
        issued_at = _numeric_date(claims, "iat")
        email = claims.get("email")
        session_id = claims.get("sid")
        if session_id is not None and (not isinstance(session_id, str) or not session_id):
            raise _fail("TOKEN_MALFORMED", "token 'sid' is not a non-empty string")
        return UserClaims(
            user_id=sub,
            email=email if isinstance(email, str) and email else None,
            token_type=token_type,
            issued_at=issued_at,
            expires_at=expires_at,
            key_id=kid,
            token=token,
            session_id=session_id,
        )

    async def _key_for(self, kid: str) -> RSAKey:
        if self._fetched_at is None or self._clock() - self._fetched_at >= self._cache_seconds:
            await self._refresh(forced=False)
        key = self._keys.get(kid)
        if key is None:
            # Maybe auth rotated since the last fetch; look once more (rate-limited).
            await self._refresh(forced=True)
            key = self._keys.get(kid)
            if key is None:
                raise _fail("TOKEN_UNKNOWN_KEY", f"no published key with kid {kid!r}")
        return key

    async def _refresh(self, *, forced: bool) -> None:
        """Fetch the JWKS unless a fetch is in flight (then wait for it) or one started too recently."""
        if self._inflight is None:
            now = self._clock()
            if self._last_attempt is not None and now - self._last_attempt < self._min_refetch_interval:
                if forced or self._fetched_at is not None:
                    return  # keep what we have; an unknown kid stays unknown until the interval passes
                raise Unavailable("token keys unavailable: fetching the JWKS failed")
            self._last_attempt = now
            self._inflight = asyncio.create_task(self._fetch())
            self._inflight.add_done_callback(_retrieve_exception)
        try:
            # shield: a caller that gives up (deadline) must not cancel the fetch the others wait for.
            await asyncio.shield(self._inflight)
        except Exception as error:
            if self._fetched_at is None:
                raise Unavailable("token keys unavailable: fetching the JWKS failed") from error

    async def _fetch(self) -> None:
        try:
            document = await self._source.fetch_jwks()
            keys = parse_jwks(document, self._keys)
        except Exception:
            _log.exception("fetching the JWKS failed; keeping %d known keys", len(self._keys))
            raise
        finally:
            self._inflight = None
        self._keys = keys
        self._fetched_at = self._clock()


def _retrieve_exception(task: asyncio.Task[None]) -> None:
    # Every waiter may have been cancelled; mark the exception as seen so asyncio does not log it twice.
    if not task.cancelled():
        task.exception()
