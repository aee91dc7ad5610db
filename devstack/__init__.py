"""The weAlist platform on one machine: embedded Postgres, Redis and S3, the dev PKI and the services.

``python -m devstack up`` (what ``nox -s up`` runs) starts everything and blocks until Ctrl-C; tests use
the same machinery in-process::

    from devstack import pick_port_offset, run_stack

    with run_stack(tmp_path, pick_port_offset(), {"AUTH_TEST_LOGIN_ENABLED": "true"}) as info:
        info.services["auth"].addr   # "127.0.0.1:<port>", mTLS with the certificates in info.pki_dir

Modules: :mod:`devstack.postgres`, :mod:`devstack.redis`, :mod:`devstack.s3` (one server each, embedded
or external), :mod:`devstack.supervisor` (service processes), :mod:`devstack.stack` (all of it).
"""

from devstack._process import DevstackError, StartupError, free_port, port_is_free
from devstack.postgres import PostgresServer, start_postgres
from devstack.redis import RedisServer, start_redis
from devstack.s3 import S3Info, S3Server, start_s3
from devstack.stack import Stack, StackInfo, pick_port_offset, run_stack
from devstack.supervisor import (
    InfraEndpoints,
    ServiceExitedError,
    ServiceSpec,
    ServiceTimeoutError,
    Supervisor,
    build_service_env,
    discover_services,
)

__all__ = [
    "DevstackError",
    "InfraEndpoints",
    "PostgresServer",
    "RedisServer",
    "S3Info",
    "S3Server",
    "ServiceExitedError",
    "ServiceSpec",
    "ServiceTimeoutError",
    "Stack",
    "StackInfo",
    "StartupError",
    "Supervisor",
    "build_service_env",
    "discover_services",
    "free_port",
    "pick_port_offset",
    "port_is_free",
    "run_stack",
    "start_postgres",
    "start_redis",
    "start_s3",
]
