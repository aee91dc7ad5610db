"""``python -m services.user``: the user service."""

from __future__ import annotations

from pathlib import Path

from mesh import ObjectStore, Runtime, load_settings, run
from services.user.models import Attachment
from services.user.servicer import UserInternalServicer, UserServicer
from services.user.settings import UserSettings


async def build(runtime: Runtime[UserSettings]) -> list[object]:
    """The user API and the internal methods, on the user database and the picture bucket."""
    database = await runtime.database(Path(__file__).parent / "migrations")
    store = ObjectStore(runtime.settings)
    runtime.sweep_uploads(database, store, Attachment, every=runtime.settings.cleanup_interval_seconds)
    return [UserServicer(database, store, runtime.redis), UserInternalServicer(database)]


def main() -> None:
    """Entry point."""
    run(load_settings(UserSettings), build)


if __name__ == "__main__":
    main()
