"""Settings of the auth service."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr

from mesh import OFF_IN_PRODUCTION, PUBLIC_IN_PRODUCTION, REQUIRED_IN_PRODUCTION, MeshSettings


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, f"WEALIST_{name}")


class AuthSettings(MeshSettings):
    """Token lifetimes, the login switches, and Google OAuth2."""

    workload: str = "auth"
    access_token_ttl_seconds: int = Field(
        default=1800, gt=0, validation_alias=_env("AUTH_ACCESS_TOKEN_TTL_SECONDS")
    )
    refresh_token_ttl_seconds: int = Field(
        default=604800, gt=0, validation_alias=_env("AUTH_REFRESH_TOKEN_TTL_SECONDS")
    )
    # Production keys come from a Secret; without one the key ring lives in the state folder.
    # Required in production: every auth pod must sign with the one shared key.
    signing_key_pem: SecretStr | None = Field(
        default=None, validation_alias=_env("AUTH_SIGNING_KEY_PEM"), json_schema_extra=REQUIRED_IN_PRODUCTION
    )
    signing_key_id: str | None = Field(default=None, validation_alias=_env("AUTH_SIGNING_KEY_ID"))
    # Rotating a Secret-held key without logging anyone out, in two roll-outs: first publish the new key as
    # NEXT (verifiers learn it, nothing signs with it); then make it the signing key and the old one
    # PREVIOUS (still published, so the tokens it signed keep verifying until they expire).
    signing_key_next_pem: SecretStr | None = Field(
        default=None, validation_alias=_env("AUTH_SIGNING_KEY_NEXT_PEM")
    )
    signing_key_previous_pem: SecretStr | None = Field(
        default=None, validation_alias=_env("AUTH_SIGNING_KEY_PREVIOUS_PEM")
    )
    signing_key_previous_id: str | None = Field(
        default=None, validation_alias=_env("AUTH_SIGNING_KEY_PREVIOUS_ID")
    )

    test_login_enabled: bool = Field(
        default=False, validation_alias=_env("AUTH_TEST_LOGIN_ENABLED"), json_schema_extra=OFF_IN_PRODUCTION
    )
    dev_oauth_enabled: bool = Field(
        default=False, validation_alias=_env("AUTH_DEV_OAUTH_ENABLED"), json_schema_extra=OFF_IN_PRODUCTION
    )
    dev_login_email: str = Field(default="dev@wealist.local", validation_alias=_env("AUTH_DEV_LOGIN_EMAIL"))

    # The web client's page that reads ?accessToken=…&refreshToken=…&userId=….
    web_callback_url: str = Field(
        default="http://localhost:8088/oauth/callback",
        validation_alias=_env("AUTH_WEB_CALLBACK_URL"),
        json_schema_extra=PUBLIC_IN_PRODUCTION,
    )
    # Where a login may send the browser back to (scheme://host:port plus a path prefix).
    allowed_redirects: list[str] = Field(
        default=["http://localhost:8088/", "http://localhost:3000/", "http://localhost:5173/"],
        validation_alias=_env("AUTH_ALLOWED_REDIRECTS"),
        json_schema_extra=PUBLIC_IN_PRODUCTION,
    )
    # This deployment's public base URL of the auth routes, for the discovery document.
    public_url: str = Field(
        default="http://localhost:8088/svc/auth",
        validation_alias=_env("AUTH_PUBLIC_URL"),
        json_schema_extra=PUBLIC_IN_PRODUCTION,
    )

    google_client_id: str | None = Field(default=None, validation_alias=_env("GOOGLE_CLIENT_ID"))
    google_client_secret: SecretStr | None = Field(
        default=None, validation_alias=_env("GOOGLE_CLIENT_SECRET")
    )
    google_redirect_uri: str = Field(
        default="http://localhost:8088/api/oauth2/callback/google",
        validation_alias=_env("GOOGLE_REDIRECT_URI"),
        json_schema_extra=PUBLIC_IN_PRODUCTION,
    )
    google_authorize_url: str = Field(
        default="https://accounts.google.com/o/oauth2/v2/auth", validation_alias=_env("GOOGLE_AUTHORIZE_URL")
    )
    google_token_url: str = Field(
        default="https://oauth2.googleapis.com/token", validation_alias=_env("GOOGLE_TOKEN_URL")
    )
    google_userinfo_url: str = Field(
        default="https://openidconnect.googleapis.com/v1/userinfo",
        validation_alias=_env("GOOGLE_USERINFO_URL"),
    )

    @property
    def google_configured(self) -> bool:
        """Whether real Google OAuth2 can run."""
        return bool(self.google_client_id and self.google_client_secret)

    @property
    def keys_dir(self) -> Path:
        """Where the key ring lives when no key comes from a Secret."""
        return self.state_dir / "auth" / "keys"
