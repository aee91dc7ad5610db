"""Google OAuth2 login (authorization code with PKCE, through authlib) and where the browser lands after.

The original kept the OAuth ``state`` in a server session behind a cookie. Here the state is a random
key in Redis holding the PKCE verifier and the requested landing page for ten minutes, taken exactly
once, so any replica can finish a login another one started and a replayed callback fails.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httpx2
import redis.asyncio
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from mesh import InvalidField, Unauthenticated, Unavailable
from services.auth.settings import AuthSettings

STATE_PREFIX = "auth:oauth:state:"
STATE_TTL_SECONDS = 600


@dataclass(frozen=True, slots=True)
class GoogleIdentity:
    """Who Google says logged in."""

    subject: str
    email: str
    name: str


def landing_url(settings: AuthSettings, requested: str) -> str:
    """The page the browser returns to: ``requested`` when the allow-list admits it, else the default.

    A candidate must match an allowed entry's scheme, host and port exactly and start with its path,
    so ``http://localhost:8088.evil.example/`` does not pass for ``http://localhost:8088/``.
    """
    if not requested:
        return settings.web_callback_url
    candidate = urlsplit(requested)
    for allowed in settings.allowed_redirects:
        rule = urlsplit(allowed)
        if (
            candidate.scheme == rule.scheme
            and candidate.netloc == rule.netloc
            and candidate.path.startswith(rule.path or "/")
        ):
            return requested
    return settings.web_callback_url


def with_query(url: str, **params: str) -> str:
    """``url`` with these query parameters appended."""
    separator = "&" if urlsplit(url).query else "?"
    return f"{url}{separator}{urlencode(params)}"


class GoogleLogin:
    """The two legs of Google's authorization-code flow."""

    def __init__(self, settings: AuthSettings, redis_client: redis.asyncio.Redis) -> None:
        self.settings = settings
        self.redis = redis_client

    def _client(self) -> AsyncOAuth2Client:
        secret = self.settings.google_client_secret
        return AsyncOAuth2Client(
            client_id=self.settings.google_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            scope="openid email profile",
            redirect_uri=self.settings.google_redirect_uri,
            code_challenge_method="S256",
            timeout=10.0,
        )

    async def start(self, landing: str) -> str:
        """Google's consent URL; remembers the PKCE verifier and the landing page under the state."""
        state = secrets.token_urlsafe(32)
        verifier = generate_token(64)
        async with self._client() as client:
            url, _ = client.create_authorization_url(
                self.settings.google_authorize_url, state=state, code_verifier=verifier
            )
        await self.redis.set(
            STATE_PREFIX + state, json.dumps({"verifier": verifier, "landing": landing}), ex=STATE_TTL_SECONDS
        )
        return str(url)

    async def complete(self, *, code: str, state: str) -> tuple[GoogleIdentity, str]:
        """Exchange the code; returns who logged in and the landing page saved at the start."""
        if not code:
            raise InvalidField("code", "is required")
        saved = await self.redis.getdel(STATE_PREFIX + state) if state else None
        if saved is None:
            raise Unauthenticated("unknown or expired login state", code="OAUTH_STATE_INVALID")
        remembered = json.loads(saved)
        # Google refusing the code (a bad PKCE verifier, a used or foreign code) is authlib's OAuthError,
        # Google unreachable or answering garbage an httpx2 or JSON error: each must end as a MeshError,
        # so the browser lands on the web client with ?error= instead of the call failing as INTERNAL.
        try:
            async with self._client() as client:
                await client.fetch_token(
                    self.settings.google_token_url, code=code, code_verifier=remembered["verifier"]
                )
                response = await client.get(self.settings.google_userinfo_url)
            info = response.json() if response.status_code == 200 else None
        except OAuthError as error:
            raise Unauthenticated(
                f"Google refused the authorization code: {error.error}", code="OAUTH_CODE_REJECTED"
            ) from error
        except (httpx2.HTTPError, ValueError) as error:
            raise Unavailable("Google could not be asked", code="OAUTH_PROVIDER_FAILED") from error
        if not isinstance(info, dict):
            raise Unauthenticated("Google did not return the user's profile", code="OAUTH_USERINFO_FAILED")
        if not info.get("email") or info.get("email_verified") is False:
            raise Unauthenticated("the Google account has no verified e-mail", code="OAUTH_EMAIL_UNVERIFIED")
        if not info.get("sub"):
            # Accounts are linked by Google's subject: without one a login could not be told apart.
            raise Unauthenticated("Google did not say who logged in", code="OAUTH_USERINFO_FAILED")
        identity = GoogleIdentity(
            subject=str(info.get("sub", "")), email=str(info["email"]), name=str(info.get("name") or "")
        )
        return identity, str(remembered["landing"])
