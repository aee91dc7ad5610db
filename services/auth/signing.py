"""Where auth's signing keys come from (a Secret in production, else the ring in the state folder), and
the ``rotate-key`` command.

Rotating makes a new signing key in the key folder of the state folder (``WEALIST_STATE_DIR`` when set,
else the repository's ``.state``, where ``nox -s up`` keeps it, from whatever directory it is run). It is
published at once and signs 10 s later (``ACTIVATION_DELAY``), by when every verifier can have it;
``--now`` skips the wait, for a leaked key. The previous key stays published until every token it signed
has expired. Running auth processes take the change up within a second: nothing restarts and nobody is
logged out.
"""

from __future__ import annotations

from pathlib import Path

from services.auth.keys import ACTIVATION_DELAY, KeyRing
from services.auth.settings import AuthSettings


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


# The checkout this code runs from (an editable install): its .state is the dev stack's default.
REPO_STATE_DIR = Path(__file__).resolve().parents[2] / ".state"


def rotate_key(settings: AuthSettings, *, now: bool) -> str:
    """Rotate the key ring in the state folder; the new key's kid.

    Without ``WEALIST_STATE_DIR`` the folder is the repository's ``.state``, not one relative to the
    current directory; and a folder without a ring is an error: a new ring there would be read by no
    running auth, and the rotation would silently do nothing.
    """
    if settings.signing_key_pem is not None:
        raise SystemExit(
            "the signing key comes from AUTH_SIGNING_KEY_PEM: rotate it by replacing that secret"
        )
    if "state_dir" not in settings.model_fields_set:
        settings = settings.model_copy(update={"state_dir": REPO_STATE_DIR})
    if not KeyRing.exists_in(settings.keys_dir):
        raise SystemExit(
            f"no signing keys in {settings.keys_dir}: start the platform first (nox -s up), or set "
            "WEALIST_STATE_DIR to the state folder it runs with"
        )
    return load_keys(settings).rotate(activate_after=0.0 if now else ACTIVATION_DELAY).kid
