"""The shared runtime of weAlist mesh: what every workload does, written once.

Server start (grpc.aio with health, reflection and the interceptor chain), mTLS identity, client channels,
settings, JSON logs, Prometheus metrics, token verification, database access and the hub that fans live
events out from Redis pub/sub to a replica's streams. Services import from here only; the underscored
modules are private.
"""

from mesh._access import (
    DEBUG_WORKLOAD,
    MethodAccess,
    UserAuth,
    access_table,
    method_access,
    method_path,
    methods_without_access,
)
from mesh._channels import Channels, open_channel
from mesh._context import CallContext, current_call, current_user
from mesh._db import Database, migrate, run_migrations_env, upgrade_to_head
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
from mesh._identity import TlsMaterial, ensure_dev_pki, load_tls, pki_paths, spiffe_id
from mesh._interceptors import accept_stream, accepts_stream_itself
from mesh._logging import configure_logging
from mesh._membership import (
    MembershipCache,
    MembershipChange,
    follow_membership_changes,
    invalidate_memberships,
    membership_key,
    run_until_cancelled,
    tail_membership_changes,
)
from mesh._pubsub import ChannelHub, Subscriber
from mesh._redis import redis_client
from mesh._runtime import Hosted, RemoteJwks, Runtime, run
from mesh._settings import DEFAULT_PORTS, WORKLOADS, MeshSettings
from mesh._tokens import (
    JwksSource,
    TokenVerifier,
    UserClaims,
    account_closed_key,
    blacklist_key,
    close_account,
    reopen_account,
    revoke,
)

__all__ = [
    "DEBUG_WORKLOAD",
    "DEFAULT_PORTS",
    "WORKLOADS",
    "AlreadyExists",
    "CallContext",
    "ChannelHub",
    "Channels",
    "Conflict",
    "Database",
    "FailedPrecondition",
    "Forbidden",
    "Hosted",
    "InvalidArgument",
    "InvalidField",
    "JwksSource",
    "MembershipCache",
    "MembershipChange",
    "MeshError",
    "MeshSettings",
    "MethodAccess",
    "NotFound",
    "RemoteJwks",
    "ResourceExhausted",
    "Runtime",
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
    "all_files",
    "all_services",
    "blacklist_key",
    "close_account",
    "configure_logging",
    "current_call",
    "current_user",
    "ensure_dev_pki",
    "follow_membership_changes",
    "invalidate_memberships",
    "load_tls",
    "membership_key",
    "method_access",
    "method_path",
    "methods_without_access",
    "migrate",
    "open_channel",
    "pki_paths",
    "redis_client",
    "reopen_account",
    "revoke",
    "run",
    "run_migrations_env",
    "run_until_cancelled",
    "services_of",
    "spiffe_id",
    "tail_membership_changes",
    "upgrade_to_head",
    "workload_of",
]
