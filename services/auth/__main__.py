"""``python -m services.auth``: the auth service; ``... rotate-key [--now]`` rotates its signing key
(see :mod:`services.auth.signing`)."""

from __future__ import annotations

import sys

from mesh import Runtime, load_settings, run
from services.auth.servicer import AuthServicer
from services.auth.settings import AuthSettings
from services.auth.signing import load_keys, rotate_key
from services.auth.tokens import TokenIssuer, TokenService


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


def main() -> None:
    """Entry point: serve, or ``rotate-key``."""
    settings = load_settings(AuthSettings)
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
