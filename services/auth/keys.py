"""auth's signing key ring: RSA keys persisted in the state folder, rotated, published as a JWKS.

Layout of the key directory (mode 0700)::

    keys.json       the index: [{"kid", "created_at", "retired_at"}], oldest first
    <kid>.pem       each private key, PKCS#8 PEM, mode 0600
    .lock           flock(2) target that serialises creation and rotation between processes

The newest key signs. :meth:`KeyRing.rotate` makes a new signing key and stamps the previous one with
``retired_at``; a retired key stays in the JWKS for ``retire_after_seconds`` (the longest token lifetime,
the refresh TTL) so every token it signed can still be verified, then it is dropped from the index and its
file deleted.

Key ids are the RFC 7638 JWK thumbprint (SHA-256 of the public key's canonical JWK, base64url) cut to 16
characters (96 bits). Derived from the key itself, the kid needs no coordination: two replicas loading the
same PEM (a Kubernetes Secret) publish the same kid; a rotated key can never reuse an old kid; and it
reveals nothing but a hash of the public key.

A ring kept in a folder follows the folder: when another process rotates it (``python -m services.auth
rotate-key``, or another replica), the index changes and every running auth re-reads it within a second,
so a rotation needs no restart. Verifiers elsewhere learn the new ``kid`` by refetching the JWKS.

In production the key usually comes from the environment instead (:meth:`KeyRing.from_pem`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey

from mesh import JWT_ALGORITHM as ALGORITHM

__all__ = ["ACTIVATION_DELAY", "DEFAULT_RETIRE_AFTER_SECONDS", "KEY_BITS", "KeyRing", "SigningKey"]

KEY_BITS = 2048
KID_LENGTH = 16
#: The refresh TTL of the original (7 days): a retired key must outlive every token it signed.
DEFAULT_RETIRE_AFTER_SECONDS = 604_800
_INDEX = "keys.json"
_LOCK = ".lock"
_INDEX_VERSION = 1
#: How often a persisted ring looks whether another process changed its index (seconds).
RELOAD_CHECK_SECONDS = 1.0
#: How long a rotated key is published before it signs. A verifier refetches the JWKS for an unknown kid
#: at most every 5 s (mesh/_tokens.py); auth replicas see the folder within RELOAD_CHECK_SECONDS. Any
#: verifier then either fetched after the key was published, or may refetch when its first token comes.
ACTIVATION_DELAY = 10.0


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One RSA key of the ring."""

    kid: str
    key: RSAKey = field(repr=False)
    """The private key, as a joserfc JWK."""
    created_at: float
    retired_at: float | None = None
    """When it stopped signing (a newer key took over); ``None`` for the current signing key."""
    signs_from: float | None = None
    """When it starts signing, when that is after ``created_at``: a rotated key is published a few
    seconds before it signs, so that every verifier has it by the time a token names it."""
    jwk: dict[str, str] = field(default_factory=dict, compare=False)
    """The public JWK as published."""

    @classmethod
    def from_private_key(
        cls,
        private: rsa.RSAPrivateKey,
        *,
        kid: str | None,
        created_at: float,
        retired_at: float | None = None,
        signs_from: float | None = None,
    ) -> SigningKey:
        """Wrap a ``cryptography`` RSA private key; ``kid`` defaults to the shortened RFC 7638 thumbprint."""
        if private.key_size < KEY_BITS:
            raise ValueError(f"RSA signing keys must have at least {KEY_BITS} bits, not {private.key_size}")
        if kid is None:
            kid = RSAKey.import_key(private.public_key()).thumbprint()[:KID_LENGTH]
        key = RSAKey.import_key(private, {"kid": kid, "use": "sig", "alg": ALGORITHM})
        public = key.as_dict(private=False)
        jwk = {"kty": "RSA", "use": "sig", "alg": ALGORITHM, "kid": kid}
        jwk |= {"n": str(public["n"]), "e": str(public["e"])}
        return cls(
            kid=kid, key=key, created_at=created_at, retired_at=retired_at, signs_from=signs_from, jwk=jwk
        )

    def pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""
        private = self.key.private_key
        assert private is not None
        return private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def _load_pem(pem: bytes) -> rsa.RSAPrivateKey:
    private = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise TypeError("the signing key must be an RSA private key")
    return private


def _generate(created_at: float, signs_from: float | None = None) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    return SigningKey.from_private_key(private, kid=None, created_at=created_at, signs_from=signs_from)


class KeyRing:
    """The signing keys of auth: the current one signs, recently retired ones are still published."""

    def __init__(
        self,
        keys: list[SigningKey],
        *,
        retire_after_seconds: int,
        directory: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Prefer :meth:`load_or_create` or :meth:`from_pem`. ``keys`` oldest first, the last one signs."""
        if not keys or keys[-1].retired_at is not None:
            raise ValueError("a key ring needs a current (not retired) signing key")
        self._keys = keys
        self.retire_after_seconds = retire_after_seconds
        self.directory = directory
        self._clock = clock
        # What the index looked like when this ring last read or wrote it, and when to look again.
        self._index_seen = _index_stamp(directory) if directory is not None else None
        self._next_look = clock() + RELOAD_CHECK_SECONDS

    # --- construction ---------------------------------------------------------------------------------

    @staticmethod
    def exists_in(directory: Path) -> bool:
        """Whether ``directory`` holds a key ring (its index)."""
        return (directory / _INDEX).is_file()

    @classmethod
    def load_or_create(
        cls, directory: Path, *, retire_after_seconds: int, clock: Callable[[], float] = time.time
    ) -> KeyRing:
        """The ring persisted in ``directory``, created with a first key if there is none.

        Safe for several processes starting at once on an empty folder: the directory lock makes the second
        one wait and then load the key the first one created.
        """
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        with _locked(directory):
            keys = _read_ring(directory)
            now = clock()
            changed = False
            if not keys or keys[-1].retired_at is not None:
                keys = [*keys, _write_key(directory, _generate(now))]
                changed = True
            keys, dropped = _prune(keys, now, retire_after_seconds)
            if changed or dropped:
                _write_index(directory, keys)
                _delete_keys(directory, dropped)
        return cls(keys, retire_after_seconds=retire_after_seconds, directory=directory, clock=clock)

    @classmethod
    def from_pem(
        cls,
        pem: bytes,
        kid: str | None = None,
        *,
        previous: tuple[bytes, str | None] | None = None,
        upcoming: bytes | None = None,
        retire_after_seconds: int = DEFAULT_RETIRE_AFTER_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> KeyRing:
        """A ring held in memory only, signing with ``pem`` (PKCS#8 or PKCS#1, e.g. from a Secret).

        ``kid`` defaults to the thumbprint-based id; give the one other parties already know (the original
        used ``JWT_RSA_KEY_ID``, ``wealist-auth-key-1``) to keep its tokens valid across the migration.
        ``previous`` (PEM, kid) is a key that signed before: published for ``retire_after_seconds`` more,
        never signing. ``upcoming`` is the key the next roll-out will sign with: published, never signing.
        """
        now = clock()

        def held(key_pem: bytes, key_id: str | None, **times: float) -> SigningKey:
            return SigningKey.from_private_key(_load_pem(key_pem), kid=key_id, created_at=now, **times)

        keys = [held(*previous, retired_at=now)] if previous is not None else []
        keys.append(held(pem, kid))
        if upcoming is not None:
            keys.append(held(upcoming, None, signs_from=math.inf))
        if len({key.kid for key in keys}) != len(keys):
            raise ValueError("the previous, current and next signing keys must differ")
        return cls(keys, retire_after_seconds=retire_after_seconds, clock=clock)

    # --- use ------------------------------------------------------------------------------------------

    @property
    def current(self) -> SigningKey:
        """The key that signs new tokens: the newest one whose time to sign has come."""
        self._follow_folder()
        now = self._clock()
        for key in reversed(self._keys):
            if key.signs_from is None or key.signs_from <= now:
                return key
        return self._keys[0]

    def published(self) -> list[SigningKey]:
        """The keys verifiers must know, newest first: one about to sign, the signing key, those retired
        recently enough."""
        self._follow_folder()
        now, grace = self._clock(), self.retire_after_seconds
        live = [k for k in self._keys if k.retired_at is None or now < k.retired_at + grace]
        return live[::-1]

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document (``/.well-known/jwks.json``)."""
        return {"keys": [dict(k.jwk) for k in self.published()]}

    async def fetch_jwks(self) -> dict[str, Any]:
        """:class:`mesh._tokens.JwksSource` for auth's own verifier: the JWKS, without a network hop."""
        return self.jwks()

    def _follow_folder(self) -> None:
        """Take up a rotation another process wrote to the folder (looked at most once a second)."""
        if self.directory is None:
            return
        now = self._clock()
        if now < self._next_look:
            return
        self._next_look = now + RELOAD_CHECK_SECONDS
        if _index_stamp(self.directory) == self._index_seen:
            return
        with _locked(self.directory):
            keys = _read_ring(self.directory, known=self._keys)
            self._index_seen = _index_stamp(self.directory)
        if keys and keys[-1].retired_at is None:
            self._keys = keys

    def rotate(self, *, activate_after: float = 0.0) -> SigningKey:
        """Make a new signing key; the previous one retires when it takes over (still published a while).

        With ``activate_after`` the new key is published at once but signs only that many seconds later:
        long enough, and verifiers have it before any token names it (see ``ACTIVATION_DELAY``). A key
        that must go at once (leaked) is rotated with 0.

        A persisted ring re-reads the index under the lock first, so a rotation done by another process
        sharing the folder is not lost. Keys retired long enough are dropped (and their files deleted).
        """
        now = self._clock()
        takes_over = now + activate_after
        new = _generate(now, signs_from=takes_over if activate_after > 0 else None)
        if self.directory is None:
            keys, _ = _prune([*_retire(self._keys, takes_over), new], now, self.retire_after_seconds)
        else:
            with _locked(self.directory):
                on_disk = _read_ring(self.directory) or self._keys
                _write_key(self.directory, new)
                keys, dropped = _prune([*_retire(on_disk, takes_over), new], now, self.retire_after_seconds)
                _write_index(self.directory, keys)
                _delete_keys(self.directory, dropped)
                self._index_seen = _index_stamp(self.directory)
        self._keys = keys
        return new

    def prune(self) -> list[str]:
        """Forget the keys retired more than ``retire_after_seconds`` ago (files included); their kids."""
        now = self._clock()
        keys, dropped = _prune(self._keys, now, self.retire_after_seconds)
        kids = [k.kid for k in dropped]
        if dropped and self.directory is not None:
            with _locked(self.directory):
                on_disk = _read_ring(self.directory) or self._keys
                keys, dropped_on_disk = _prune(on_disk, now, self.retire_after_seconds)
                if dropped_on_disk:
                    _write_index(self.directory, keys)
                    _delete_keys(self.directory, dropped_on_disk)
                self._index_seen = _index_stamp(self.directory)
            kids += [k.kid for k in dropped_on_disk if k.kid not in kids]
        self._keys = keys
        return kids


# --- persistence helpers ------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive flock on ``<directory>/.lock`` (blocks until the holder is done)."""
    fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _retire(keys: list[SigningKey], now: float) -> list[SigningKey]:
    return [k if k.retired_at is not None else replace(k, retired_at=now) for k in keys]


def _prune(
    keys: list[SigningKey], now: float, retire_after_seconds: int
) -> tuple[list[SigningKey], list[SigningKey]]:
    kept: list[SigningKey] = []
    dropped: list[SigningKey] = []
    for k in keys:
        expired = k.retired_at is not None and now >= k.retired_at + retire_after_seconds
        (dropped if expired else kept).append(k)
    return kept, dropped


def _index_stamp(directory: Path) -> tuple[int, int] | None:
    """Identity and modification time of the index (it is replaced by a rename on every write)."""
    try:
        status = (directory / _INDEX).stat()
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_mtime_ns


def _read_ring(directory: Path, *, known: Sequence[SigningKey] = ()) -> list[SigningKey]:
    """The keys listed in the index, oldest first; ``[]`` when there is no index yet.

    Keys already in ``known`` are taken from there (their retirement from the index) rather than imported
    from their PEM files again.
    """
    loaded = {k.kid: k for k in known}
    index = directory / _INDEX
    try:
        data = json.loads(index.read_bytes())
    except FileNotFoundError:
        return []
    except ValueError as error:
        # Never paper over this with a fresh key: that would silently invalidate every session.
        raise RuntimeError(f"{index} is corrupt; fix or remove it") from error
    keys: list[SigningKey] = []
    for entry in data["keys"]:
        kid = str(entry["kid"])
        retired_at, signs_from = entry.get("retired_at"), entry.get("signs_from")
        retired = None if retired_at is None else float(retired_at)
        signs = None if signs_from is None else float(signs_from)
        if kid in loaded:
            keys.append(replace(loaded[kid], retired_at=retired, signs_from=signs))
            continue
        pem = (directory / f"{kid}.pem").read_bytes()
        keys.append(
            SigningKey.from_private_key(
                _load_pem(pem),
                kid=kid,
                created_at=float(entry["created_at"]),
                retired_at=retired,
                signs_from=signs,
            )
        )
    return keys


def _write_key(directory: Path, key: SigningKey) -> SigningKey:
    """Write ``<kid>.pem`` readable by its owner only; never overwrites an existing file."""
    fd = os.open(directory / f"{key.kid}.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, 0o600)  # the umask could only narrow it, but be explicit
        handle.write(key.pem())
        handle.flush()
        os.fsync(fd)
    return key


def _index_entry(key: SigningKey) -> dict[str, Any]:
    entry: dict[str, Any] = {"kid": key.kid, "created_at": key.created_at, "retired_at": key.retired_at}
    if key.signs_from is not None:
        entry["signs_from"] = key.signs_from
    return entry


def _write_index(directory: Path, keys: list[SigningKey]) -> None:
    """Replace ``keys.json`` atomically (write a temporary file, fsync, rename)."""
    document = {
        "version": _INDEX_VERSION,
        "keys": [_index_entry(k) for k in keys],
    }
    tmp = directory / f".{_INDEX}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
        handle.flush()
        os.fsync(fd)
    tmp.replace(directory / _INDEX)


def _delete_keys(directory: Path, keys: list[SigningKey]) -> None:
    for k in keys:
        (directory / f"{k.kid}.pem").unlink(missing_ok=True)
