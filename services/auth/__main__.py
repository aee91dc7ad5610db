"""``python -m services.auth``: the auth service; ``... rotate-key [--now]`` rotates its signing key.

Rotating makes a new signing key in the key folder. It is published at once and signs 10 s later
(``ACTIVATION_DELAY``), by when every verifier can have it; ``--now`` skips the wait, for a leaked key. The
previous key stays published until every token it signed has expired. Running auth processes take the
change up within a second: nothing restarts and nobody is logged out.
"""

from __future__ import annotations

import sys

from mesh import Runtime, run
from services.auth.keys import ACTIVATION_DELAY, KeyRing
from services.auth.servicer import AuthServicer
from services.auth.settings import AuthSettings
from services.auth.tokens import TokenIssuer, TokenService


def load_keys(settings: AuthSettings) -> KeyRing:
    """The signing keys: from a Secret in production, else the ring in the state folder."""
    retire_after = settings.refresh_token_ttl_seconds
    if settings.signing_key_pem is not None:
        previous, upcoming = settings.signing_key_previous_pem, settings.signing_key_next_pem
        return KeyRing.from_pem(
            settings.signing_key_pem.get_secret_value().encode(),
            settings.signing_key_id,
            previous=(
                (previous.get_secret_value().encode(), settings.signing_key_previous_id) if previous else None
            ),
            upcoming=upcoming.get_secret_value().encode() if upcoming else None,
            retire_after_seconds=retire_after,
        )
    return KeyRing.load_or_create(settings.keys_dir, retire_after_seconds=retire_after)


async def build(runtime: Runtime[AuthSettings]) -> list[object]:
    """The auth API; auth verifies user tokens against its own key ring, no network hop."""
    settings = runtime.settings
    keys = load_keys(settings)
    runtime.verify_users_with(keys)
    issuer = TokenIssuer(
        keys=keys,
        issuer=settings.jwt_issuer,
        access_ttl=settings.access_token_ttl_seconds,
        refresh_ttl=settings.refresh_token_ttl_seconds,
    )
    tokens = TokenService(issuer=issuer, verifier=runtime.verifier, redis=runtime.redis)
    return [
        AuthServicer(
            settings=settings, keys=keys, tokens=tokens, redis_client=runtime.redis, channels=runtime.channels
        )
    ]


def rotate_key(settings: AuthSettings, *, now: bool) -> str:
    """Rotate the key ring in the state folder; the new key's kid."""
    if settings.signing_key_pem is not None:
        raise SystemExit(
            "the signing key comes from AUTH_SIGNING_KEY_PEM: rotate it by replacing that secret"
        )
    return load_keys(settings).rotate(activate_after=0.0 if now else ACTIVATION_DELAY).kid


def main() -> None:
    """Entry point: serve, or ``rotate-key``."""
    settings = AuthSettings()
    arguments = sys.argv[1:]
    if arguments in (["rotate-key"], ["rotate-key", "--now"]):
        kid = rotate_key(settings, now=arguments[1:] == ["--now"])
        sys.stdout.write(f"new signing key: {kid}\n")
        return
    if arguments:
        raise SystemExit("usage: python -m services.auth [rotate-key [--now]]")
    run(settings, build)


if __name__ == "__main__":
    main()
