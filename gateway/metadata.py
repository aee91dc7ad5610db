"""HTTP headers → gRPC metadata, the deadline of a call, and the HTTP status a service asks for."""

from __future__ import annotations

from collections.abc import Mapping

import grpc

from mesh import current_traceparent

# Headers that travel to the service as metadata under the same (lower-case) name.
FORWARDED_HEADERS = ("traceparent", "tracestate", "x-workspace-id")
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def grpc_timeout(value: str | None) -> float | None:
    """Seconds from a ``Grpc-Timeout`` header (``"500m"``, ``"10S"``); None when absent or malformed."""
    if not value or len(value) < 2 or value[-1] not in _UNITS or not value[:-1].isdigit() or len(value) > 9:
        return None
    return int(value[:-1]) * _UNITS[value[-1]]


def outgoing_metadata(
    headers: Mapping[str, str], *, request_id: str, token: str | None
) -> tuple[tuple[str, str], ...]:
    """The metadata of a backend call: request id, the user's token when forwarded, trace and workspace."""
    metadata = [("x-request-id", request_id)]
    if token is not None:
        metadata.append(("authorization", f"Bearer {token}"))
    traced = current_traceparent()
    for name in FORWARDED_HEADERS:
        value = traced if name == "traceparent" and traced else headers.get(name)
        if value:
            metadata.append((name, value))
    return tuple(metadata)


# The response metadata key with which a service picks the HTTP status of a successful unary call, as
# grpc-gateway's ``x-http-code`` (201 when every participant was added, 207 when only some were).
HTTP_CODE = "x-http-code"


def http_code(metadata: grpc.aio.Metadata | None) -> int | None:
    """The status named by ``x-http-code`` in ``metadata`` when it is a 2xx code (three digits); else None."""
    if not metadata:
        return None
    value = metadata.get(HTTP_CODE)
    if isinstance(value, str) and len(value) == 3 and value.isascii() and value.isdigit():
        code = int(value)
        if 200 <= code <= 299:
            return code
    return None
