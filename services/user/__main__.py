"""``python -m services.user``: the user service."""

from __future__ import annotations

from pathlib import Path

from wealist.user.v1 import internal_pb2, internal_pb2_grpc, user_pb2, user_pb2_grpc

from mesh import Database, Hosted, RemoteJwks, Runtime, configure_logging, migrate, run
from services.user.servicer import ObjectStore, UserInternalServicer, UserServicer
from services.user.settings import UserSettings

MIGRATIONS = Path(__file__).parent / "migrations"


async def serve(runtime: Runtime) -> None:
    """Migrate (in dev), then serve the user API and the internal methods."""
    url = runtime.settings.service_database_url()
    if runtime.settings.migrate_on_start:
        await migrate(MIGRATIONS, url)
    database = Database(url)
    runtime.on_shutdown(database.close)
    runtime.verify_users_with(RemoteJwks(runtime.channels))
    assert isinstance(runtime.settings, UserSettings)
    user_api = UserServicer(database, ObjectStore(runtime.settings), runtime.redis)
    internal = UserInternalServicer(database)
    await runtime.serve(
        [
            Hosted(
                user_pb2.DESCRIPTOR.services_by_name["UserService"],
                lambda server: user_pb2_grpc.add_UserServiceServicer_to_server(user_api, server),
            ),
            Hosted(
                internal_pb2.DESCRIPTOR.services_by_name["UserInternalService"],
                lambda server: internal_pb2_grpc.add_UserInternalServiceServicer_to_server(internal, server),
            ),
        ]
    )


def main() -> None:
    """Entry point."""
    settings = UserSettings()
    configure_logging(settings.workload, level=settings.log_level, json_lines=settings.log_json)
    run(settings, serve)


if __name__ == "__main__":
    main()
