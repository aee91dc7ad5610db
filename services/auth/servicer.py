"""Protobuf ↔ domain for the auth service."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import grpc
import redis.asyncio
from grpc_health.v1 import health_pb2
from wealist.auth.v1 import auth_pb2, auth_pb2_grpc
from wealist.user.v1 import internal_pb2, internal_pb2_grpc

from mesh import Channels, FailedPrecondition, InvalidField, MeshError, NotFound, Unavailable, current_user
from services.auth.keys import KeyRing
from services.auth.oauth import GoogleLogin, landing_url, with_query
from services.auth.settings import AuthSettings
from services.auth.tokens import TokenPair, TokenService

log = logging.getLogger("wealist.auth")
SERVICE_NAME = "auth-service"


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    """Token issue, refresh, logout and validation; the login flows."""

    def __init__(
        self,
        *,
        settings: AuthSettings,
        keys: KeyRing,
        tokens: TokenService,
        redis_client: redis.asyncio.Redis,
        channels: Channels,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.tokens = tokens
        self.redis = redis_client
        self.channels = channels
        self.google = GoogleLogin(settings, redis_client)

    @property
    def _users(self) -> internal_pb2_grpc.UserInternalServiceAsyncStub:
        return internal_pb2_grpc.UserInternalServiceStub(self.channels.to("user"))

    async def _login(self, *, email: str, name: str, provider: str, subject: str = "") -> TokenPair:
        """Find or create the user in the user service, then issue a pair (a new session) for it.

        Which account a login reaches is the user service's rule (by the provider's subject, or by an
        e-mail the account verified); the one refusal it has becomes a domain error here, so that a
        Google login it refuses lands on the web client with ``?error=account_linked_elsewhere``.
        """
        try:
            found = await self._users.FindOrCreateOAuthUser(
                internal_pb2.FindOrCreateOAuthUserRequest(
                    email=email, name=name, provider=provider, provider_subject=subject
                )
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.FAILED_PRECONDITION:
                raise FailedPrecondition(
                    error.details() or "this login cannot enter that account", code="ACCOUNT_LINKED_ELSEWHERE"
                ) from error
            raise
        return self.tokens.issue_pair(user_id=found.user_id, email=found.email)

    async def RefreshToken(
        self, request: auth_pb2.RefreshTokenRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.RefreshTokenResponse:
        """Trade a refresh token for a new pair; the old one is revoked."""
        if not request.refresh_token.strip():
            raise InvalidField("refreshToken", "is required")
        pair = await self.tokens.refresh(request.refresh_token.strip())
        return auth_pb2.RefreshTokenResponse(
            access_token=pair.access_token, refresh_token=pair.refresh_token, user_id=pair.user_id
        )

    async def Logout(
        self, request: auth_pb2.LogoutRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.LogoutResponse:
        """End the session of the caller's access token (and of the refresh token when given)."""
        await self.tokens.logout(current_user().token, request.refresh_token or None)
        return auth_pb2.LogoutResponse(success=True, message="logged out")

    async def CheckToken(
        self, request: auth_pb2.CheckTokenRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.CheckTokenResponse:
        """Always answers; a token that is not good gives valid=false and the reason."""
        if not request.token:
            return auth_pb2.CheckTokenResponse(valid=False, message="token is required")
        try:
            claims = await self.tokens.validate(request.token)
        except MeshError as error:
            if isinstance(error, Unavailable):
                raise
            return auth_pb2.CheckTokenResponse(valid=False, message=error.message)
        return auth_pb2.CheckTokenResponse(user_id=claims.user_id, valid=True, message="token is valid")

    async def ValidateToken(
        self, request: auth_pb2.ValidateTokenRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.ValidateTokenResponse:
        """The claims of a good access token; UNAUTHENTICATED with the reason otherwise."""
        claims = await self.tokens.validate(request.token)
        return auth_pb2.ValidateTokenResponse(
            user_id=claims.user_id,
            email=claims.email or "",
            issued_at=claims.issued_at,
            expires_at=claims.expires_at,
            key_id=claims.key_id,
        )

    async def GetJwks(
        self, request: auth_pb2.GetJwksRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.GetJwksResponse:
        """The published keys: the signing key and those rotated out but not yet retired."""
        keys = [
            auth_pb2.JsonWebKey(
                kty=key["kty"], use=key["use"], alg=key["alg"], kid=key["kid"], n=key["n"], e=key["e"]
            )
            for key in self.keys.jwks()["keys"]
        ]
        return auth_pb2.GetJwksResponse(keys=keys)

    async def GetOpenidConfiguration(
        self, request: auth_pb2.GetOpenidConfigurationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.GetOpenidConfigurationResponse:
        """Discovery document with this deployment's public URLs (the original hard-coded a host)."""
        base = self.settings.public_url.rstrip("/")
        return auth_pb2.GetOpenidConfigurationResponse(
            issuer=self.settings.jwt_issuer,
            jwks_uri=f"{base}/.well-known/jwks.json",
            authorization_endpoint=f"{base}/oauth2/authorization/google",
            token_endpoint=f"{base}/api/auth/refresh",
            response_types_supported=["code"],
            subject_types_supported=["public"],
            id_token_signing_alg_values_supported=["RS256"],
            scopes_supported=["openid", "email", "profile"],
        )

    async def IssueTestToken(
        self, request: auth_pb2.IssueTestTokenRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.IssueTestTokenResponse:
        """Dev/test login: the same e-mail always gives the same user; off unless switched on."""
        if not self.settings.test_login_enabled:
            raise NotFound("the test login is not enabled")
        if request.user_id:
            pair = await self._login_existing(request.user_id, request.email)
        else:
            email = request.email or self.settings.dev_login_email
            pair = await self._login(email=email, name=request.name, provider="test")
        return auth_pb2.IssueTestTokenResponse(
            access_token=pair.access_token, refresh_token=pair.refresh_token, user_id=pair.user_id
        )

    async def _login_existing(self, user_id: str, email: str) -> TokenPair:
        try:
            uuid.UUID(user_id)
        except ValueError:
            raise InvalidField("userId", "must be a UUID") from None
        found = await self._users.CheckUserExists(internal_pb2.CheckUserExistsRequest(user_id=user_id))
        if not found.exists:
            raise InvalidField("userId", "no such user")
        return self.tokens.issue_pair(user_id=user_id, email=email or None)

    async def GetTestStatus(
        self, request: auth_pb2.GetTestStatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.GetTestStatusResponse:
        """Whether the test login is on."""
        enabled = self.settings.test_login_enabled
        message = "the test login is enabled: turn it off outside dev" if enabled else "the test login is off"
        return auth_pb2.GetTestStatusResponse(test_auth_enabled=enabled, message=message)

    async def StartGoogleLogin(
        self, request: auth_pb2.StartGoogleLoginRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.StartGoogleLoginResponse:
        """Redirect to Google, or with the dev switch (and no Google client) straight back logged in."""
        landing = landing_url(self.settings, request.redirect_uri)
        if self.settings.google_configured:
            return auth_pb2.StartGoogleLoginResponse(location=await self.google.start(landing))
        if not self.settings.dev_oauth_enabled:
            raise FailedPrecondition("Google login is not configured", code="OAUTH_NOT_CONFIGURED")
        email = request.login_hint or self.settings.dev_login_email
        pair = await self._login(email=email, name="", provider="dev")
        return auth_pb2.StartGoogleLoginResponse(location=_tokens_url(landing, pair))

    async def CompleteGoogleLogin(
        self, request: auth_pb2.CompleteGoogleLoginRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.CompleteGoogleLoginResponse:
        """Finish Google's flow and land on the web client's callback with the tokens.

        Failures land there too, with ``?error=<code>``: the web client shows it and returns home,
        where the original sent the browser to a Spring login page the client does not have.
        """
        if request.error:
            return auth_pb2.CompleteGoogleLoginResponse(
                location=with_query(self.settings.web_callback_url, error="access_denied")
            )
        try:
            identity, landing = await self.google.complete(code=request.code, state=request.state)
            pair = await self._login(
                email=identity.email, name=identity.name, provider="google", subject=identity.subject
            )
        except MeshError as error:
            log.info("Google login failed: %s", error.message)
            return auth_pb2.CompleteGoogleLoginResponse(
                location=with_query(self.settings.web_callback_url, error=error.code.lower())
            )
        return auth_pb2.CompleteGoogleLoginResponse(location=_tokens_url(landing, pair))

    async def GetHealth(
        self, request: auth_pb2.GetHealthRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.GetHealthResponse:
        """Alive."""
        return auth_pb2.GetHealthResponse(status="ok", service=SERVICE_NAME)

    async def GetReadiness(
        self, request: auth_pb2.GetReadinessRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.GetReadinessResponse:
        """Ready when Redis answers and the user service reports SERVING."""
        try:
            await self.redis.ping()
        except redis.RedisError as error:
            raise Unavailable("redis is not reachable") from error
        check = self.channels.to("user").unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        try:
            reply = await check(health_pb2.HealthCheckRequest(), timeout=2.0)
        except grpc.aio.AioRpcError as error:
            raise Unavailable("the user service is not reachable") from error
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise Unavailable("the user service is not serving")
        return auth_pb2.GetReadinessResponse(status="ready", service=SERVICE_NAME, details="UP")


def _tokens_url(landing: str, pair: TokenPair) -> str:
    return with_query(
        landing, accessToken=pair.access_token, refreshToken=pair.refresh_token, userId=pair.user_id
    )
