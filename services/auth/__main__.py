"""``python -m services.auth``: the auth service."""

from __future__ import annotations

from wealist.auth.v1 import auth_pb2, auth_pb2_grpc

from mesh import Hosted, Runtime, TokenVerifier, configure_logging, run
from services.auth.keys import KeyRing
from services.auth.servicer import AuthServicer
from services.auth.settings import AuthSettings
from services.auth.tokens import TokenIssuer, TokenService


def load_keys(settings: AuthSettings) -> KeyRing:
    """The signing keys: from a Secret in production, else the ring in the state folder."""
    retire_after = settings.refresh_token_ttl_seconds
    if settings.signing_key_pem is not None:
        return KeyRing.from_pem(
            settings.signing_key_pem.get_secret_value().encode(),
            settings.signing_key_id,
            retire_after_seconds=retire_after,
        )
    return KeyRing.load_or_create(settings.keys_dir, retire_after_seconds=retire_after)


async def serve(runtime: Runtime) -> None:
    """Serve the auth API; auth verifies user tokens against its own key ring, no network hop."""
    settings = runtime.settings
    assert isinstance(settings, AuthSettings)
    keys = load_keys(settings)
    runtime.verify_users_with(keys)
    verifier = runtime.verifier
    assert isinstance(verifier, TokenVerifier)
    issuer = TokenIssuer(
        keys=keys,
        issuer=settings.jwt_issuer,
        access_ttl=settings.access_token_ttl_seconds,
        refresh_ttl=settings.refresh_token_ttl_seconds,
    )
    tokens = TokenService(issuer=issuer, verifier=verifier, redis=runtime.redis)
    servicer = AuthServicer(
        settings=settings, keys=keys, tokens=tokens, redis_client=runtime.redis, channels=runtime.channels
    )
    await runtime.serve(
        [
            Hosted(
                auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
                lambda server: auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server),
            ),
        ]
    )


def main() -> None:
    """Entry point."""
    settings = AuthSettings()
    configure_logging(settings.workload, level=settings.log_level, json_lines=settings.log_json)
    run(settings, serve)


if __name__ == "__main__":
    main()
