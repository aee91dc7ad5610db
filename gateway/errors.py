"""The one gRPC → HTTP status table and the error envelope every service's REST errors use.

The table is google.rpc.Code's documented HTTP mapping (as grpc-gateway v2 applies it). The body is
the contract's ``{"error": {"code", "message"}}``, plus ``field`` when a request field was at fault;
``code`` is the machine reason from ``google.rpc.ErrorInfo`` when the service sent one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from mesh import MeshError

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

# A WebSocket closed for a reason the client should not retry blindly: 4000 + the HTTP status (4401 like
# 401, 4403 like 403). Browsers show the code, where a refused handshake would only show 1006.
WS_CLOSE_BASE = 4000

# Messages of statuses whose text may carry internals: the client gets a fixed sentence instead.
OPAQUE = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}


def http_status(code: grpc.StatusCode) -> int:
    """HTTP status of a gRPC status code."""
    return HTTP_STATUS.get(code, 500)


@dataclass(frozen=True, slots=True)
class HttpError:
    """An error ready to send: status and the envelope's fields."""

    status: int
    code: str
    message: str
    field: str | None = None

    def body(self) -> dict[str, Any]:
        """The contract's error envelope."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return {"error": error}


class Refused(Exception):
    """Stops handling a request with a ready HttpError (401 at the edge, 413, 404...)."""

    def __init__(self, error: HttpError) -> None:
        super().__init__(error.message)
        self.error = error


def from_status(code: grpc.StatusCode, message: str, details: bytes | None = None) -> HttpError:
    """An HttpError from a gRPC status and its ``grpc-status-details-bin``."""
    reason = code.name
    field = None
    if details:
        status = status_pb2.Status.FromString(details)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(info):
                reason = info.reason or reason
            elif detail.Unpack(bad) and bad.field_violations:
                field = bad.field_violations[0].field
    if code in OPAQUE:
        message = "internal error"
    return HttpError(status=http_status(code), code=reason, message=message, field=field)


def from_mesh_error(error: MeshError) -> HttpError:
    """The HttpError of a domain error raised in the gateway itself (a bad body, a bad token)."""
    return HttpError(
        status=http_status(error.status),
        code=error.code,
        message=error.message,
        field=getattr(error, "field", None),
    )


def ws_close_code(error: HttpError) -> int:
    """The close code that ends a WebSocket with ``error``."""
    return WS_CLOSE_BASE + error.status


def from_rpc_error(error: grpc.aio.AioRpcError) -> HttpError:
    """An HttpError from a failed call."""
    details = None
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            details = value
    code = error.code()
    message = error.details() or code.name
    trailing = {key for key, _ in error.trailing_metadata() or ()}
    if "x-request-id" not in trailing:
        # Not answered by a service (every one echoes the request id): a transport failure, whose text
        # names addresses and resolver internals the client has no use for.
        message = "the service is unavailable" if code is grpc.StatusCode.UNAVAILABLE else code.name.lower()
    return from_status(code, message, details)
