"""Issuing token pairs, and auth's refresh / logout / validate rules on top of the shared verifier.

Claims are the ones the web client reads (docs/services/auth.md): ``sub`` (user UUID), ``iss``, ``iat``,
``exp`` (epoch seconds), ``type`` (``access``/``refresh``), ``email`` only when non-blank; header
``{"typ":"JWT","alg":"RS256","kid":…}``. Two additions: ``jti`` (see :meth:`TokenIssuer.issue_pair`)
and ``sid``, the login session, shared by the access and refresh token of one login and handed on by every
refresh.

Where this departs from the original on purpose:

- refresh requires a refresh token and validate an access token (the original checked neither ``type``
  nor ``iss``);
- a refresh token is single-use even under concurrency: the old token is claimed with ``SET NX`` on its
  blacklist key, so of two simultaneous refreshes exactly one gets a new pair;
- logout ends the whole session (the original revoked only the access token, and the web client sends
  nothing else, so its refresh token kept working for a week): every token carrying the session's
  ``sid``, the refresh token and every rotation of it included, is refused from then on, by auth's
  refresh and by every verifier (``SESSION_ENDED``).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio
import redis.exceptions
from joserfc import jwt
from joserfc.jws import JWSRegistry

from mesh import JWT_ALGORITHM as ALGORITHM
from mesh import (
    InvalidField,
    TokenVerifier,
    Unauthenticated,
    Unavailable,
    UserClaims,
    account_closed_key,
    end_sessions,
    revoke_once,
    session_ended_key,
)
from services.auth.keys import KeyRing

__all__ = ["TokenIssuer", "TokenPair", "TokenService"]

_REGISTRY = JWSRegistry(algorithms=[ALGORITHM])


@dataclass(frozen=True)
class TokenPair:
    """A fresh access + refresh token for one user."""

    access_token: str
    refresh_token: str
    user_id: str
    access_expires_at: int
    refresh_expires_at: int
    session_id: str
    """``sid`` of both tokens."""


class TokenIssuer:
    """Signs access and refresh tokens with the key ring's current key."""

    def __init__(
        self,
        *,
        keys: KeyRing,
        issuer: str,
        access_ttl: int = 1800,
        refresh_ttl: int = 604800,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if access_ttl <= 0 or refresh_ttl <= 0:
            raise ValueError("token lifetimes must be positive")
        if keys.retire_after_seconds < refresh_ttl:
            # A key retired right after signing a refresh token would vanish from the JWKS before the token
            # expires, logging its user out early.
            raise ValueError(
                f"the key ring retires keys after {keys.retire_after_seconds}s, "
                f"shorter than the refresh TTL {refresh_ttl}s"
            )
        self._keys = keys
        self.issuer = issuer
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._clock = clock

    def issue_pair(self, *, user_id: str, email: str | None, session_id: str | None = None) -> TokenPair:
        """An access token and a refresh token for ``user_id`` (a UUID), signed now.

        Both carry ``session_id`` as ``sid``: a new session (a login) when it is ``None``, else the
        session a refresh continues.
        """
        sid = session_id or secrets.token_urlsafe(16)
        try:
            sub = str(uuid.UUID(user_id))
        except (ValueError, TypeError) as error:
            raise InvalidField("userId", "must be a UUID") from error
        now = int(self._clock())
        key = self._keys.current
        header = {"alg": ALGORITHM, "kid": key.kid}  # joserfc puts "typ": "JWT" first

        def sign(token_type: str, expires_at: int) -> str:
            claims: dict[str, Any] = {"sub": sub, "iss": self.issuer, "iat": now, "exp": expires_at}
            claims["type"] = token_type
            if email is not None and email.strip():
                claims["email"] = email
            claims["sid"] = sid
            # jti is new: the original had none, so two tokens minted for one user in the same second were
            # byte-identical, and revoking one (logout) silently revoked the other (another device's).
            claims["jti"] = secrets.token_urlsafe(16)
            return jwt.encode(header, claims, key.key, registry=_REGISTRY)

        access_expires_at = now + self.access_ttl
        refresh_expires_at = now + self.refresh_ttl
        return TokenPair(
            access_token=sign("access", access_expires_at),
            refresh_token=sign("refresh", refresh_expires_at),
            user_id=sub,
            access_expires_at=access_expires_at,
            refresh_expires_at=refresh_expires_at,
            session_id=sid,
        )


class TokenService:
    """auth's token operations: refresh (rotating), logout (revoking), validate.

    Redis traffic: refresh one ``MGET`` and one ``SET NX``; logout one pipelined round trip; validate one
    ``MGET``.
    """

    def __init__(
        self,
        *,
        issuer: TokenIssuer,
        verifier: TokenVerifier,
        redis: redis.asyncio.Redis,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuer = issuer
        self._verifier = verifier
        self._redis = redis
        self._clock = clock

    def issue_pair(self, *, user_id: str, email: str | None) -> TokenPair:
        """A new pair for a user who just logged in."""
        return self._issuer.issue_pair(user_id=user_id, email=email)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Trade a refresh token for a new pair of the same session; the presented token is revoked (single
        use).

        The ``SET NX`` on the token's blacklist key is both the revocation check and the claim, so two
        concurrent refreshes with one token cannot both succeed: the loser gets ``TOKEN_REVOKED``. A
        logged-out session (``SESSION_ENDED``) and a deleted account (``ACCOUNT_CLOSED``) get no new
        tokens; both are read before the claim, so a refresh token refused for a deleted account works
        again once the account is restored. The web client logs out when a refresh fails.
        """
        claims = await self._verifier.verify_stateless(refresh_token, expected_type="refresh")
        keys = [account_closed_key(claims.user_id)]
        if claims.session_id is not None:
            keys.append(session_ended_key(claims.session_id))
        try:
            closed, *ended = await self._redis.mget(keys)
            if ended and ended[0] is not None:
                raise Unauthenticated("the session has been logged out", code="SESSION_ENDED")
            if closed is not None:
                raise Unauthenticated("the account has been deleted", code="ACCOUNT_CLOSED")
            claimed = await revoke_once(
                self._redis,
                refresh_token,
                expires_at=claims.expires_at,
                clock=self._clock,
                leeway_seconds=self._verifier.leeway_seconds,
            )
        except redis.exceptions.RedisError as error:
            raise Unavailable("token blacklist unavailable") from error
        if not claimed:
            raise Unauthenticated("refresh token has been used or revoked", code="TOKEN_REVOKED")
        # A token from before sessions existed starts one here.
        return self._issuer.issue_pair(
            user_id=claims.user_id, email=claims.email, session_id=claims.session_id
        )

    async def logout(self, access_token: str, refresh_token: str | None = None) -> None:
        """End the session of the presented access token: every token of that login, whatever is sent.

        The access token must verify (signature, type, expiry; logging out twice is fine). A refresh token
        in the body is optional: when it verifies and is the same user's, its session ends too (it may be
        another login of this browser); one that does not verify is ignored rather than failing the
        logout. The presented tokens are also blacklisted, for tokens issued before sessions existed.
        """
        access = await self._verifier.verify_stateless(access_token, expected_type="access")
        presented = [access]
        if refresh_token:
            try:
                refresh = await self._verifier.verify_stateless(refresh_token, expected_type="refresh")
            except Unauthenticated:
                pass
            else:
                if refresh.user_id == access.user_id:
                    presented.append(refresh)
        sessions = sorted({claims.session_id for claims in presented if claims.session_id is not None})
        try:
            await end_sessions(
                self._redis,
                sessions,
                lifetime_seconds=self._issuer.refresh_ttl,
                revoked=presented,
                clock=self._clock,
                leeway_seconds=self._verifier.leeway_seconds,
            )
        except redis.exceptions.RedisError as error:
            raise Unavailable("token blacklist unavailable") from error

    async def validate(self, token: str) -> UserClaims:
        """Full verification of an access token (blacklist included)."""
        return await self._verifier.verify(token, expected_type="access")
