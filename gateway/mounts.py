"""Where the gateway serves what: the service prefixes, the OAuth mounts and its own workload name.

Every service's canonical paths (``/api/boards/{boardId}``) answer under ``/api/svc/<workload>`` (what
the deployed web client calls) and ``/svc/<workload>`` (the seed's routing table); the prefix is
stripped before matching. Auth's OAuth2 endpoints also answer at ``/api/oauth2/*`` and ``/oauth2/*``,
where the web client's login button and Google's redirect go. The router, the OpenAPI document, the
Istio policies and the HTTPRoutes all read these names from here.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "API_PREFIX",
    "EDGE_PREFIXES",
    "GATEWAY_WORKLOAD",
    "MOUNT_PREFIXES",
    "OAUTH_MOUNTS",
    "OAUTH_WORKLOAD",
    "SEED_PREFIX",
    "split_prefix",
]

# The gateway's workload identity: the caller its access options name, its certificate's SPIFFE id.
GATEWAY_WORKLOAD: Final = "gateway"

API_PREFIX: Final = "/api/svc/"
SEED_PREFIX: Final = "/svc/"
# The service mounts as OpenAPI writes them (no trailing slash): the first is the one the paths use.
MOUNT_PREFIXES: Final = (API_PREFIX.rstrip("/"), SEED_PREFIX.rstrip("/"))

OAUTH_WORKLOAD: Final = "auth"
# Mount → the part of the path kept as auth's canonical path: "/api/oauth2/x" is auth's "/oauth2/x".
OAUTH_MOUNTS: Final = {"/api/oauth2/": "/api", "/oauth2/": ""}

# Every path prefix the gateway answers to the outside with a backend's route.
EDGE_PREFIXES: Final = (API_PREFIX, SEED_PREFIX, *OAUTH_MOUNTS)


def split_prefix(path: str) -> tuple[str, str] | None:
    """(workload, canonical path) of an API path; None for anything else (static files, own endpoints).

    Matching is exact and case-sensitive, as the router's literals are: ``/API/SVC/...`` and
    ``//api/svc/...`` are no API paths (the caller answers them with a 404 of its own).
    """
    for prefix in (API_PREFIX, SEED_PREFIX):
        if path.startswith(prefix):
            workload, slash, rest = path[len(prefix) :].partition("/")
            return (workload, slash + rest) if workload else None
    for mount, stripped in OAUTH_MOUNTS.items():
        if path.startswith(mount):
            return OAUTH_WORKLOAD, path[len(stripped) :]
    return None
