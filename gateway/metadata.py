"""HTTP headers → gRPC metadata, the deadline of a call, and the HTTP status a service asks for.

gRPC metadata values are printable ASCII (``%x20-7E``) and their total size is bounded by the backend.
So a forwarded header (``X-Workspace-Id``, ``traceparent``, ``tracestate``) holding anything else is a
400 naming the header, one over ``max_forwarded_header_bytes`` a 431; the backend would otherwise fail
the call (a 500, or a RESOURCE_EXHAUSTED 429 that retrying never cures). A client's ``X-Request-ID`` is
kept only when it is a short safe token, else the gateway makes one: it is echoed into logs, response
headers and bodies.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

import grpc

from gateway.errors import HttpError, Refused
from mesh import InvalidField, current_traceparent

# Headers that travel to the service as metadata under the same (lower-case) name, with the name an
# error gives them (as clients spell them).
FORWARDED_HEADERS = {
    "traceparent": "traceparent",
    "tracestate": "tracestate",
    "x-workspace-id": "X-Workspace-Id",
}
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def grpc_timeout(value: str | None) -> float | None:
    """Seconds from a ``Grpc-Timeout`` header (``"500m"``, ``"10S"``); None when absent or malformed."""
    if not value or len(value) < 2 or value[-1] not in _UNITS or not value[:-1].isdigit() or len(value) > 9:
        return None
    return int(value[:-1]) * _UNITS[value[-1]]


def request_id_of(header: str | None) -> str:
    """The client's X-Request-ID when it is a short safe token (``[A-Za-z0-9._-]{1,64}``), else a new one."""
    if header and _SAFE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def forwarded_headers(headers: Mapping[str, str], *, limit: int) -> tuple[tuple[str, str], ...]:
    """The headers a backend call carries as metadata (trace context, workspace), checked.

    Raises :class:`~mesh.InvalidField` (400) naming a header that is not printable ASCII, and
    :class:`~gateway.errors.Refused` with a 431 for one longer than ``limit`` bytes.
    """
    found = []
    for name, spelled in FORWARDED_HEADERS.items():
        value = headers.get(name)
        if not value:
            continue
        if len(value) > limit:
            message = f"the {spelled} header exceeds {limit} bytes"
            raise Refused(HttpError(431, "HEADER_TOO_LARGE", message, field=spelled))
        if not _PRINTABLE_ASCII.fullmatch(value):
            raise InvalidField(spelled, "must be printable ASCII")
        found.append((name, value))
    return tuple(found)


def outgoing_metadata(
    forwarded: tuple[tuple[str, str], ...], *, request_id: str, token: str | None
) -> tuple[tuple[str, str], ...]:
    """The metadata of a backend call: request id, the user's token when forwarded, trace and workspace."""
    traced = current_traceparent()
    if traced:
        # Traced: the gateway's own span is the parent the backend's span names.
        forwarded = (("traceparent", traced), *(item for item in forwarded if item[0] != "traceparent"))
    if token is None:
        return (("x-request-id", request_id), *forwarded)
    return (("x-request-id", request_id), ("authorization", f"Bearer {token}"), *forwarded)


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
