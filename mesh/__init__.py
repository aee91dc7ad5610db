"""The shared runtime of weAlist mesh: what every workload does, written once.

The service kit (``run(settings, build)`` on a typed ``Runtime``: servicers registered from their generated
base classes, the database with its migrations, started components, background work), server start
(grpc.aio with health, reflection and the interceptor chain), mTLS identity, client channels, settings,
JSON logs, Prometheus metrics, token verification, database access, the one ``ObjectStore`` for S3 with
the clean-up of unconfirmed uploads, the small conversions every servicer needs, and the hub that fans live
events out from Redis pub/sub to a replica's streams. Everything outside ``mesh`` imports from here only
(a test checks it); the underscored modules are private.
"""

from mesh._access import (
    DEBUG_WORKLOAD,
    MethodAccess,
    MissingAccessOption,
    UserAuth,
    access_table,
    iter_methods,
    method_access,
    method_path,
    methods_without_access,
)
from mesh._channels import Channels, open_channel
from mesh._context import CallContext, current_call, current_user
from mesh._convert import Context, caller_id, optional_datetime, parse_uuid, parse_uuids, timestamp
from mesh._db import Database, alembic_config, ensure_database, migrate, run_migrations_env, upgrade_to_head
from mesh._descriptors import all_files, all_services, services_of, workload_of
from mesh._errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    Forbidden,
    InvalidArgument,
    InvalidField,
    MeshError,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from mesh._http import http_server
from mesh._identity import TlsMaterial, ensure_dev_pki, load_tls, pki_paths, spiffe_id
from mesh._interceptors import accept_stream, accepts_stream_itself, bearer_token
from mesh._logging import JsonFormatter, configure_logging
from mesh._membership import (
    MembershipCache,
    MembershipChange,
    follow_membership_changes,
    generation_key,
    invalidate_memberships,
    membership_key,
    run_until_cancelled,
    tail_membership_changes,
)
from mesh._objects import ObjectStore, S3Settings, StoredObject, cors_configuration, media_type
from mesh._production import (
    OFF_IN_PRODUCTION,
    PUBLIC_IN_PRODUCTION,
    REQUIRED_IN_PRODUCTION,
    load_settings,
    production_problems,
    variable_of,
)
from mesh._pubsub import ChannelHub, Subscriber
from mesh._redis import redis_client
from mesh._runtime import Component, Hosted, RemoteJwks, Runtime, hosted_of, run
from mesh._settings import DEFAULT_PORTS, GATEWAY_HTTP_PORT, HTTP_PORT_OFFSET, WORKLOADS, MeshSettings
from mesh._strings import nul_field
from mesh._tokens import ALGORITHM as JWT_ALGORITHM
from mesh._tokens import (
    JwksSource,
    TokenVerifier,
    UserClaims,
    account_closed_key,
    blacklist_key,
    close_account,
    end_sessions,
    peek_header,
    reopen_account,
    revocation_ttl_ms,
    revoke,
    revoke_once,
    session_ended_key,
)
from mesh._tracing import ENDPOINT_VARIABLE as OTLP_ENDPOINT_VARIABLE
from mesh._tracing import current_traceparent, server_span, setup_tracing, shutdown_tracing, tracer
from mesh._uploads import remove_expired_uploads, sweep_expired_uploads, sweep_uploads_forever

__all__ = [
    "DEBUG_WORKLOAD",
    "DEFAULT_PORTS",
    "GATEWAY_HTTP_PORT",
    "HTTP_PORT_OFFSET",
    "JWT_ALGORITHM",
    "OFF_IN_PRODUCTION",
    "OTLP_ENDPOINT_VARIABLE",
    "PUBLIC_IN_PRODUCTION",
    "REQUIRED_IN_PRODUCTION",
    "WORKLOADS",
    "AlreadyExists",
    "CallContext",
    "ChannelHub",
    "Channels",
    "Component",
    "Conflict",
    "Context",
    "Database",
    "FailedPrecondition",
    "Forbidden",
    "Hosted",
    "InvalidArgument",
    "InvalidField",
    "JsonFormatter",
    "JwksSource",
    "MembershipCache",
    "MembershipChange",
    "MeshError",
    "MeshSettings",
    "MethodAccess",
    "MissingAccessOption",
    "NotFound",
    "ObjectStore",
    "RemoteJwks",
    "ResourceExhausted",
    "Runtime",
    "S3Settings",
    "StoredObject",
    "Subscriber",
    "TlsMaterial",
    "TokenVerifier",
    "Unauthenticated",
    "Unavailable",
    "UserAuth",
    "UserClaims",
    "accept_stream",
    "accepts_stream_itself",
    "access_table",
    "account_closed_key",
    "alembic_config",
    "all_files",
    "all_services",
    "bearer_token",
    "blacklist_key",
    "caller_id",
    "close_account",
    "configure_logging",
    "cors_configuration",
    "current_call",
    "current_traceparent",
    "current_user",
    "end_sessions",
    "ensure_database",
    "ensure_dev_pki",
    "follow_membership_changes",
    "generation_key",
    "hosted_of",
    "http_server",
    "invalidate_memberships",
    "iter_methods",
    "load_settings",
    "load_tls",
    "media_type",
    "membership_key",
    "method_access",
    "method_path",
    "methods_without_access",
    "migrate",
    "nul_field",
    "open_channel",
    "optional_datetime",
    "parse_uuid",
    "parse_uuids",
    "peek_header",
    "pki_paths",
    "production_problems",
    "redis_client",
    "remove_expired_uploads",
    "reopen_account",
    "revocation_ttl_ms",
    "revoke",
    "revoke_once",
    "run",
    "run_migrations_env",
    "run_until_cancelled",
    "server_span",
    "services_of",
    "session_ended_key",
    "setup_tracing",
    "shutdown_tracing",
    "spiffe_id",
    "sweep_expired_uploads",
    "sweep_uploads_forever",
    "tail_membership_changes",
    "timestamp",
    "tracer",
    "upgrade_to_head",
    "variable_of",
    "workload_of",
]
