"""auth's key ring (persistence, rotation, retirement) and tokens (issue, refresh, logout, validate)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import RSAKey
from joserfc.jws import JWSRegistry

from mesh import InvalidField, TokenVerifier, Unauthenticated, blacklist_key, peek_header, session_ended_key
from services.auth import signing
from services.auth.keys import KeyRing
from services.auth.settings import AuthSettings
from services.auth.signing import load_keys
from services.auth.tokens import TokenIssuer, TokenPair, TokenService
from tests.support import CountingJwks, FakeClock

ISSUER = "wealist-auth-service"
USER = "0b7e7c1e-3c1f-4e55-8f7a-4b1d2f0d9c3e"
ACCESS_TTL = 1800
REFRESH_TTL = 7200
RETIRE_AFTER = REFRESH_TTL
RS256 = JWSRegistry(algorithms=["RS256"])

# --- fixtures (shared ones will move to conftest.py) ----------------------------------------------------


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return tmp_path / "state" / "auth" / "keys"


@pytest.fixture
def ring(key_dir: Path, clock: FakeClock) -> KeyRing:
    return KeyRing.load_or_create(key_dir, retire_after_seconds=RETIRE_AFTER, clock=clock)


@pytest.fixture
def verifier(ring: KeyRing, rds: redis.asyncio.Redis, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(jwks=CountingJwks(ring), redis=rds, issuer=ISSUER, clock=clock)


@pytest.fixture
def issuer(ring: KeyRing, clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(keys=ring, issuer=ISSUER, access_ttl=ACCESS_TTL, refresh_ttl=REFRESH_TTL, clock=clock)


@pytest.fixture
def service(
    issuer: TokenIssuer, verifier: TokenVerifier, rds: redis.asyncio.Redis, clock: FakeClock
) -> TokenService:
    return TokenService(issuer=issuer, verifier=verifier, redis=rds, clock=clock)


def _payload(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return decoded


async def _refused_code(awaitable: Any) -> str:
    with pytest.raises(Unauthenticated) as caught:
        await awaitable
    return caught.value.code


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# --- the key ring -------------------------------------------------------------------------------------


def test_first_load_creates_a_private_key_file_and_index(ring: KeyRing, key_dir: Path) -> None:
    kid = ring.current.kid
    pem_file = key_dir / f"{kid}.pem"

    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(pem_file.stat().st_mode) == 0o600
    assert pem_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    index = json.loads((key_dir / "keys.json").read_text())
    assert index["keys"] == [{"kid": kid, "created_at": ring.current.created_at, "retired_at": None}]
    # kid = RFC 7638 thumbprint of the public key, first 16 characters
    assert kid == RSAKey.import_key(pem_file.read_bytes()).thumbprint()[:16]
    assert len(kid) == 16


def test_keys_persist_across_loads(ring: KeyRing, key_dir: Path, clock: FakeClock) -> None:
    again = KeyRing.load_or_create(key_dir, retire_after_seconds=RETIRE_AFTER, clock=clock)

    assert again.current.kid == ring.current.kid
    assert again.current.pem() == ring.current.pem()
    assert again.jwks() == ring.jwks()


def test_jwks_publishes_public_keys_in_the_contract_shape(ring: KeyRing) -> None:
    (entry,) = ring.jwks()["keys"]

    assert list(entry) == ["kty", "use", "alg", "kid", "n", "e"]
    assert entry["kty"] == "RSA"
    assert entry["use"] == "sig"
    assert entry["alg"] == "RS256"
    assert entry["kid"] == ring.current.kid
    assert entry["e"] == "AQAB"
    assert "=" not in entry["n"]
    assert "+" not in entry["n"]
    assert "/" not in entry["n"]
    n = int.from_bytes(base64.urlsafe_b64decode(entry["n"] + "=" * (-len(entry["n"]) % 4)), "big")
    public = ring.current.key.public_key
    assert n == public.public_numbers().n
    assert public.key_size == 2048


def test_rotation_publishes_both_keys_then_retires_the_old_one(
    ring: KeyRing, key_dir: Path, clock: FakeClock
) -> None:
    old = ring.current
    clock.advance(60)
    new = ring.rotate()

    assert ring.current == new
    assert new.kid != old.kid
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new.kid, old.kid]
    reloaded = KeyRing.load_or_create(key_dir, retire_after_seconds=RETIRE_AFTER, clock=clock)
    assert reloaded.current.kid == new.kid
    assert [k.kid for k in reloaded.published()] == [new.kid, old.kid]
    assert reloaded.published()[1].retired_at == clock.now

    clock.advance(RETIRE_AFTER - 1)
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new.kid, old.kid]
    clock.advance(1)
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new.kid]

    # the next load (or rotation) forgets it, file included
    KeyRing.load_or_create(key_dir, retire_after_seconds=RETIRE_AFTER, clock=clock)
    assert not (key_dir / f"{old.kid}.pem").exists()
    assert [k["kid"] for k in json.loads((key_dir / "keys.json").read_text())["keys"]] == [new.kid]
    assert ring.prune() == [old.kid]


def test_a_rotation_by_another_process_is_taken_up_without_a_restart(
    ring: KeyRing, key_dir: Path, clock: FakeClock
) -> None:
    old = ring.current
    # As `python -m services.auth rotate-key --now` or another replica would, on the same folder.
    other = KeyRing.load_or_create(key_dir, retire_after_seconds=RETIRE_AFTER, clock=clock)
    new = other.rotate()

    assert ring.current.kid == old.kid  # the folder is looked at once a second, not on every token
    clock.advance(1)
    assert ring.current.kid == new.kid
    assert [k.kid for k in ring.published()] == [new.kid, old.kid]
    assert ring.published()[1].key is old.key  # the known key was kept, not imported again
    assert ring.published()[1].retired_at == clock.now - 1


def test_a_rotated_key_is_published_before_it_signs(ring: KeyRing, key_dir: Path, clock: FakeClock) -> None:
    old = ring.current
    new = ring.rotate(activate_after=10)

    # Published at once, so verifiers can fetch it ...
    assert [k.kid for k in ring.published()] == [new.kid, old.kid]
    # ... but the old key signs until the new one takes over, in this process and in any other.
    follower = KeyRing.load_or_create(key_dir, retire_after_seconds=RETIRE_AFTER, clock=clock)
    clock.advance(9.9)
    assert ring.current.kid == follower.current.kid == old.kid
    clock.advance(0.1)
    assert ring.current.kid == follower.current.kid == new.kid
    # The old key's grace period counts from when it stopped signing.
    clock.advance(RETIRE_AFTER - 0.5)
    assert old.kid in [k.kid for k in ring.published()]
    clock.advance(0.5)
    assert [k.kid for k in ring.published()] == [new.kid]


def _auth_command(
    tmp_path: Path, *args: str, state: str = "state", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WEALIST_STATE_DIR": str(tmp_path / state)}
    command = [sys.executable, "-m", "services.auth", *args]
    return subprocess.run(command, check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_the_rotate_key_command_rotates_the_folders_ring(
    ring: KeyRing, tmp_path: Path, clock: FakeClock
) -> None:
    old = ring.current
    announced = _auth_command(tmp_path, "rotate-key")
    assert announced.returncode == 0, announced.stderr
    next_kid = announced.stdout.strip().rsplit(" ", 1)[-1]
    clock.advance(1)
    assert next_kid in [k.kid for k in ring.published()]
    assert ring.current.kid == old.kid  # published, not yet signing

    urgent = _auth_command(tmp_path, "rotate-key", "--now")
    assert urgent.returncode == 0, urgent.stderr
    kid = urgent.stdout.strip().rsplit(" ", 1)[-1]
    clock.advance(1)
    assert ring.current.kid == kid not in (old.kid, next_kid)
    assert _auth_command(tmp_path, "rotate-key", "later").returncode != 0
    assert ring.current.kid == kid


def test_rotate_key_works_from_any_directory_and_refuses_a_folder_without_a_ring(
    ring: KeyRing, tmp_path: Path, clock: FakeClock
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rotated = _auth_command(tmp_path, "rotate-key", "--now", cwd=elsewhere)
    assert rotated.returncode == 0, rotated.stderr
    clock.advance(1)
    assert ring.current.kid == rotated.stdout.strip().rsplit(" ", 1)[-1]

    # A folder no auth runs with: an error, not a new ring nobody reads.
    wrong = _auth_command(tmp_path, "rotate-key", state="not-the-state", cwd=elsewhere)
    assert wrong.returncode != 0
    assert "no signing keys in" in wrong.stderr
    assert not (tmp_path / "not-the-state").exists()
    assert not (elsewhere / ".state").exists()


def test_rotate_key_defaults_to_the_repositorys_state_folder_not_the_current_one(
    ring: KeyRing, key_dir: Path, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEALIST_STATE_DIR", raising=False)
    monkeypatch.setattr(signing, "REPO_STATE_DIR", key_dir.parent.parent)  # <state>/auth/keys
    monkeypatch.chdir(tmp_path)

    kid = signing.rotate_key(AuthSettings(), now=True)

    clock.advance(1)
    assert ring.current.kid == kid
    assert not (tmp_path / ".state").exists()


def test_two_processes_starting_on_an_empty_folder_agree_on_one_key(key_dir: Path) -> None:
    script = (
        "import sys, pathlib\n"
        "from services.auth.keys import KeyRing\n"
        "ring = KeyRing.load_or_create(pathlib.Path(sys.argv[1]), retire_after_seconds=60)\n"
        "print(ring.current.kid)\n"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, str(key_dir)], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    kids = {p.communicate(timeout=120)[0].strip() for p in processes}

    assert all(p.returncode == 0 for p in processes)
    assert len(kids) == 1
    assert [f.name for f in key_dir.glob("*.pem")] == [f"{kids.pop()}.pem"]


def test_a_corrupt_index_is_an_error_not_a_new_key(ring: KeyRing, key_dir: Path) -> None:
    (key_dir / "keys.json").write_text("{not json")

    with pytest.raises(RuntimeError, match="corrupt"):
        KeyRing.load_or_create(key_dir, retire_after_seconds=RETIRE_AFTER)
    assert len(list(key_dir.glob("*.pem"))) == 1


def test_from_pem(clock: FakeClock) -> None:
    pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    named = KeyRing.from_pem(pem, "wealist-auth-key-1", clock=clock)
    derived = KeyRing.from_pem(pem, clock=clock)

    assert named.current.kid == "wealist-auth-key-1"
    assert named.jwks()["keys"][0]["kid"] == "wealist-auth-key-1"
    assert derived.current.kid == RSAKey.import_key(pem).thumbprint()[:16]
    assert named.current.pem() == derived.current.pem()
    assert named.directory is None


def _secret_ring(monkeypatch: pytest.MonkeyPatch, **env: str) -> KeyRing:
    """The ring ``python -m services.auth`` builds from these environment variables (and no others)."""
    for name in (
        "AUTH_SIGNING_KEY_PEM",
        "AUTH_SIGNING_KEY_ID",
        "AUTH_SIGNING_KEY_NEXT_PEM",
        "AUTH_SIGNING_KEY_PREVIOUS_PEM",
        "AUTH_SIGNING_KEY_PREVIOUS_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_keys(AuthSettings())


async def test_a_secret_held_key_rotates_in_two_roll_outs_without_logging_anyone_out(
    monkeypatch: pytest.MonkeyPatch, rds: redis.asyncio.Redis
) -> None:
    old, new = (_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)) for _ in range(2))
    legacy = "wealist-auth-key-1"
    before = _secret_ring(monkeypatch, AUTH_SIGNING_KEY_PEM=old.decode(), AUTH_SIGNING_KEY_ID=legacy)
    token = TokenIssuer(keys=before, issuer=ISSUER).issue_pair(user_id=USER, email=None).access_token

    # Roll-out 1: the new key is announced; the old one still signs.
    announcing = _secret_ring(
        monkeypatch,
        AUTH_SIGNING_KEY_PEM=old.decode(),
        AUTH_SIGNING_KEY_ID=legacy,
        AUTH_SIGNING_KEY_NEXT_PEM=new.decode(),
    )
    new_kid = KeyRing.from_pem(new).current.kid
    assert announcing.current.kid == legacy
    assert [k["kid"] for k in announcing.jwks()["keys"]] == [new_kid, legacy]

    # Roll-out 2: the new key signs, the old one is kept as PREVIOUS under its kid.
    after = _secret_ring(
        monkeypatch,
        AUTH_SIGNING_KEY_PEM=new.decode(),
        AUTH_SIGNING_KEY_PREVIOUS_PEM=old.decode(),
        AUTH_SIGNING_KEY_PREVIOUS_ID=legacy,
    )
    assert after.current.kid == new_kid
    assert [k["kid"] for k in after.jwks()["keys"]] == [new_kid, legacy]
    verifier = TokenVerifier(jwks=after, redis=rds, issuer=ISSUER)
    assert (await verifier.verify(token)).key_id == legacy  # issued before both roll-outs, still good
    fresh = TokenIssuer(keys=after, issuer=ISSUER).issue_pair(user_id=USER, email=None).access_token
    assert (await verifier.verify(fresh)).key_id == new_kid

    with pytest.raises(ValueError, match="must differ"):
        _secret_ring(monkeypatch, AUTH_SIGNING_KEY_PEM=new.decode(), AUTH_SIGNING_KEY_NEXT_PEM=new.decode())


def test_from_pem_refuses_weak_or_non_rsa_keys() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1536)  # noqa: S505 - the point
    with pytest.raises(ValueError, match="2048"):
        KeyRing.from_pem(_pem(weak))
    with pytest.raises(TypeError, match="RSA"):
        KeyRing.from_pem(_pem(ec.generate_private_key(ec.SECP256R1())))


# --- issuing ------------------------------------------------------------------------------------------


def test_issued_tokens_have_the_contract_header_and_claims(
    issuer: TokenIssuer, ring: KeyRing, clock: FakeClock
) -> None:
    pair = issuer.issue_pair(user_id=USER, email="kim@wealist.co.kr")
    now = int(clock.now)

    assert pair.user_id == USER
    assert (pair.access_expires_at, pair.refresh_expires_at) == (now + ACCESS_TTL, now + REFRESH_TTL)
    for token in (pair.access_token, pair.refresh_token):
        assert peek_header(token) == {"typ": "JWT", "alg": "RS256", "kid": ring.current.kid}
    access, refresh = _payload(pair.access_token), _payload(pair.refresh_token)
    assert set(access) == {"sub", "iss", "iat", "exp", "type", "email", "jti", "sid"}
    assert access["sub"] == refresh["sub"] == USER
    assert access["sid"] == refresh["sid"] == pair.session_id
    assert access["iss"] == ISSUER
    assert access["iat"] == refresh["iat"] == now
    assert (access["exp"], refresh["exp"]) == (now + ACCESS_TTL, now + REFRESH_TTL)
    assert (access["type"], refresh["type"]) == ("access", "refresh")
    assert access["email"] == refresh["email"] == "kim@wealist.co.kr"


@pytest.mark.parametrize("email", [None, "", "   "])
def test_blank_email_is_left_out(issuer: TokenIssuer, email: str | None) -> None:
    pair = issuer.issue_pair(user_id=USER, email=email)

    assert "email" not in _payload(pair.access_token)
    assert "email" not in _payload(pair.refresh_token)


def test_two_pairs_in_the_same_second_differ(issuer: TokenIssuer) -> None:
    first = issuer.issue_pair(user_id=USER, email=None)
    second = issuer.issue_pair(user_id=USER, email=None)

    assert first.session_id != second.session_id  # two logins, two sessions

    assert first.access_token != second.access_token
    assert first.refresh_token != second.refresh_token
    assert _payload(first.access_token)["jti"] != _payload(second.access_token)["jti"]
    assert blacklist_key(first.access_token) != blacklist_key(second.access_token)


def test_user_id_must_be_a_uuid(issuer: TokenIssuer) -> None:
    with pytest.raises(InvalidField) as caught:
        issuer.issue_pair(user_id="admin", email=None)
    assert caught.value.field == "userId"
    # and is written in canonical form
    assert issuer.issue_pair(user_id=USER.upper(), email=None).user_id == USER


def test_keys_must_outlive_refresh_tokens(ring: KeyRing) -> None:
    with pytest.raises(ValueError, match="refresh TTL"):
        TokenIssuer(keys=ring, issuer=ISSUER, refresh_ttl=RETIRE_AFTER + 1)


async def test_issued_tokens_verify_against_the_jwks(service: TokenService, verifier: TokenVerifier) -> None:
    pair = service.issue_pair(user_id=USER, email="kim@wealist.co.kr")

    access = await verifier.verify(pair.access_token)
    refresh = await verifier.verify(pair.refresh_token, expected_type="refresh")

    assert (access.user_id, access.email, access.token_type) == (USER, "kim@wealist.co.kr", "access")
    assert (refresh.user_id, refresh.token_type) == (USER, "refresh")


async def test_old_key_tokens_verify_after_rotation_until_the_key_retires(
    ring: KeyRing, issuer: TokenIssuer, rds: redis.asyncio.Redis, clock: FakeClock
) -> None:
    jwks = CountingJwks(ring)
    verifier = TokenVerifier(jwks=jwks, redis=rds, issuer=ISSUER, clock=clock)
    old_pair = issuer.issue_pair(user_id=USER, email=None)
    old_kid = ring.current.kid
    assert (await verifier.verify(old_pair.refresh_token, expected_type="refresh")).key_id == old_kid

    ring.rotate()
    new_pair = issuer.issue_pair(user_id=USER, email=None)
    clock.advance(10)

    assert peek_header(new_pair.access_token)["kid"] == ring.current.kid != old_kid
    assert (await verifier.verify(new_pair.access_token)).key_id == ring.current.kid
    assert (await verifier.verify(old_pair.refresh_token, expected_type="refresh")).key_id == old_kid

    # One second before the refresh token expires the old key is still published ...
    clock.advance(REFRESH_TTL - 11)
    assert (await verifier.verify(old_pair.refresh_token, expected_type="refresh")).key_id == old_kid
    # ... and once it has retired, verifiers (after their JWKS cache turns over) no longer know it.
    clock.advance(300)
    assert old_kid not in {k["kid"] for k in ring.jwks()["keys"]}
    lenient = TokenVerifier(jwks=jwks, redis=rds, issuer=ISSUER, leeway_seconds=10**6, clock=clock)
    code = await _refused_code(lenient.verify(old_pair.refresh_token, expected_type="refresh"))
    assert code == "TOKEN_UNKNOWN_KEY"
    code = await _refused_code(verifier.verify(old_pair.refresh_token, expected_type="refresh"))
    assert code == "TOKEN_UNKNOWN_KEY"


# --- refresh ------------------------------------------------------------------------------------------


async def test_refresh_rotates_and_the_old_refresh_token_is_then_refused(
    service: TokenService, clock: FakeClock
) -> None:
    first = service.issue_pair(user_id=USER, email="kim@wealist.co.kr")
    clock.advance(60)

    second = await service.refresh(first.refresh_token)

    assert second.user_id == USER
    assert second.refresh_token != first.refresh_token
    assert second.access_expires_at == int(clock.now) + ACCESS_TTL
    assert _payload(second.access_token)["email"] == "kim@wealist.co.kr"
    assert (await service.validate(second.access_token)).user_id == USER
    assert await _refused_code(service.refresh(first.refresh_token)) == "TOKEN_REVOKED"
    # the new refresh token works, once
    third = await service.refresh(second.refresh_token)
    assert third.user_id == USER
    # every rotation stays in the login's session
    assert first.session_id == second.session_id == third.session_id
    assert _payload(third.refresh_token)["sid"] == first.session_id
    assert await _refused_code(service.refresh(second.refresh_token)) == "TOKEN_REVOKED"


async def test_two_concurrent_refreshes_of_one_token_exactly_one_succeeds(service: TokenService) -> None:
    pair = service.issue_pair(user_id=USER, email=None)

    results = await asyncio.gather(
        *(service.refresh(pair.refresh_token) for _ in range(2)), return_exceptions=True
    )

    successes = [r for r in results if isinstance(r, TokenPair)]
    failures = [r for r in results if isinstance(r, Unauthenticated)]
    assert len(successes) == 1
    assert [f.code for f in failures] == ["TOKEN_REVOKED"]


async def test_many_concurrent_refreshes_exactly_one_succeeds(service: TokenService) -> None:
    pair = service.issue_pair(user_id=USER, email=None)

    results = await asyncio.gather(
        *(service.refresh(pair.refresh_token) for _ in range(25)), return_exceptions=True
    )

    assert sum(isinstance(r, TokenPair) for r in results) == 1
    assert {r.code for r in results if isinstance(r, Unauthenticated)} == {"TOKEN_REVOKED"}


async def test_refresh_with_an_access_token_is_refused(service: TokenService) -> None:
    pair = service.issue_pair(user_id=USER, email=None)

    assert await _refused_code(service.refresh(pair.access_token)) == "TOKEN_WRONG_TYPE"


async def test_refresh_with_an_expired_token_is_refused(service: TokenService, clock: FakeClock) -> None:
    pair = service.issue_pair(user_id=USER, email=None)
    clock.advance(REFRESH_TTL)

    assert await _refused_code(service.refresh(pair.refresh_token)) == "TOKEN_EXPIRED"


async def test_refresh_marks_the_old_token_only_for_its_remaining_lifetime(
    service: TokenService, rds: redis.asyncio.Redis, clock: FakeClock
) -> None:
    pair = service.issue_pair(user_id=USER, email=None)
    clock.advance(REFRESH_TTL - 100)

    await service.refresh(pair.refresh_token)

    assert 99_000 <= await rds.pttl(blacklist_key(pair.refresh_token)) <= 100_000


# --- logout -------------------------------------------------------------------------------------------


async def test_logout_with_the_access_token_alone_ends_the_whole_session(
    service: TokenService, verifier: TokenVerifier, rds: redis.asyncio.Redis, clock: FakeClock
) -> None:
    """What the web client does: POST /logout with the Bearer access token and no body."""
    login = service.issue_pair(user_id=USER, email=None)
    clock.advance(30)
    rotated = await service.refresh(login.refresh_token)
    other_login = service.issue_pair(user_id=USER, email=None)  # another device of the same user

    await service.logout(rotated.access_token)

    assert await _refused_code(service.validate(rotated.access_token)) == "TOKEN_REVOKED"
    # The rest of the session is refused too: the refresh token, and the older access token.
    assert await _refused_code(service.refresh(rotated.refresh_token)) == "SESSION_ENDED"
    assert await _refused_code(verifier.verify(login.access_token)) == "SESSION_ENDED"
    assert await _refused_code(verifier.verify(rotated.refresh_token, expected_type="refresh")) == (
        "SESSION_ENDED"
    )
    # The mark lasts as long as a refresh token of the session can: every refresh starts a new one.
    assert REFRESH_TTL - 1 <= await rds.ttl(session_ended_key(login.session_id)) <= REFRESH_TTL
    assert 1799_000 <= await rds.pttl(blacklist_key(rotated.access_token)) <= 1800_000
    # The other login is untouched.
    assert (await service.validate(other_login.access_token)).user_id == USER
    assert (await service.refresh(other_login.refresh_token)).user_id == USER


async def test_logout_also_ends_the_session_of_a_refresh_token_it_is_given(service: TokenService) -> None:
    pair = service.issue_pair(user_id=USER, email=None)
    older_login = service.issue_pair(user_id=USER, email=None)

    await service.logout(pair.access_token, older_login.refresh_token)

    assert await _refused_code(service.refresh(pair.refresh_token)) == "SESSION_ENDED"
    assert await _refused_code(service.validate(older_login.access_token)) == "SESSION_ENDED"


async def test_a_refresh_racing_a_logout_yields_tokens_of_the_ended_session(service: TokenService) -> None:
    pair = service.issue_pair(user_id=USER, email=None)
    renewed = await service.refresh(pair.refresh_token)

    await service.logout(pair.access_token)  # the old access token still names the session

    assert await _refused_code(service.validate(renewed.access_token)) == "SESSION_ENDED"
    assert await _refused_code(service.refresh(renewed.refresh_token)) == "SESSION_ENDED"


async def test_logout_ignores_a_bad_refresh_token(service: TokenService) -> None:
    pair = service.issue_pair(user_id=USER, email=None)
    other_users = service.issue_pair(user_id=str(uuid.uuid4()), email=None)

    await service.logout(pair.access_token, "not-a-token")
    await service.logout(pair.access_token, pair.access_token)  # wrong type: ignored
    await service.logout(pair.access_token, other_users.refresh_token)  # someone else's: not revoked

    assert await _refused_code(service.validate(pair.access_token)) == "TOKEN_REVOKED"
    assert (await service.refresh(other_users.refresh_token)).user_id == other_users.user_id


async def test_a_token_from_before_sessions_is_still_logged_out_and_refreshes_into_a_session(
    service: TokenService, ring: KeyRing, clock: FakeClock
) -> None:
    legacy = _legacy_pair(ring, clock)

    renewed = await service.refresh(legacy[1])
    assert _payload(renewed.access_token)["sid"] == renewed.session_id
    await service.logout(legacy[0])

    assert await _refused_code(service.validate(legacy[0])) == "TOKEN_REVOKED"


def _legacy_pair(ring: KeyRing, clock: FakeClock) -> tuple[str, str]:
    """An access and a refresh token as auth issued them before ``sid`` existed."""
    now = int(clock.now)

    def sign(kind: str, ttl: int) -> str:
        claims = {"sub": USER, "iss": ISSUER, "iat": now, "exp": now + ttl, "type": kind, "jti": kind}
        header = {"alg": "RS256", "kid": ring.current.kid}
        return jwt.encode(header, claims, ring.current.key, registry=RS256)

    return sign("access", ACCESS_TTL), sign("refresh", REFRESH_TTL)


async def test_logout_requires_a_valid_access_token(service: TokenService, clock: FakeClock) -> None:
    pair = service.issue_pair(user_id=USER, email=None)

    assert await _refused_code(service.logout("")) == "TOKEN_MISSING"
    assert await _refused_code(service.logout(pair.refresh_token)) == "TOKEN_WRONG_TYPE"
    clock.advance(ACCESS_TTL)
    assert await _refused_code(service.logout(pair.access_token)) == "TOKEN_EXPIRED"


# --- validate -----------------------------------------------------------------------------------------


async def test_validate_accepts_access_tokens_only(service: TokenService) -> None:
    pair = service.issue_pair(user_id=USER, email="kim@wealist.co.kr")

    claims = await service.validate(pair.access_token)

    assert (claims.user_id, claims.email, claims.token_type) == (USER, "kim@wealist.co.kr", "access")
    assert await _refused_code(service.validate(pair.refresh_token)) == "TOKEN_WRONG_TYPE"


# --- the cost of a check ------------------------------------------------------------------------------


class _CountingRedis(redis.asyncio.Redis):
    """A Redis client that records the commands it sends."""

    def __init__(self, url: str) -> None:
        super().__init__(connection_pool=redis.asyncio.ConnectionPool.from_url(url))
        self.commands: list[str] = []

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(str(args[0]))
        return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


async def test_checking_a_token_of_a_session_is_one_redis_round_trip(
    ring: KeyRing, issuer: TokenIssuer, redis_url: str, clock: FakeClock
) -> None:
    counting = _CountingRedis(redis_url)
    verifier = TokenVerifier(jwks=CountingJwks(ring), redis=counting, issuer=ISSUER, clock=clock)
    pair = issuer.issue_pair(user_id=USER, email=None)
    try:
        await verifier.verify(pair.access_token)
        assert counting.commands == ["MGET"]  # blacklist, session and account in one
        await TokenService(issuer=issuer, verifier=verifier, redis=counting, clock=clock).logout(
            pair.access_token
        )
        counting.commands.clear()
        assert await _refused_code(verifier.verify(pair.refresh_token, expected_type="refresh")) == (
            "SESSION_ENDED"
        )
        assert counting.commands == ["MGET"]
    finally:
        await counting.aclose()
        await counting.connection_pool.disconnect()  # a pool handed in is not closed with the client
