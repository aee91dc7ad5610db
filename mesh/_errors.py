"""Domain errors, each carrying the gRPC status it maps to.

The tree:

    MeshError
    ├── InvalidArgument        400  bad input; ``InvalidField`` names the field
    │   └── InvalidField
    ├── Unauthenticated        401  no user, or a token that is not good
    ├── Forbidden              403  a known caller that may not do this
    ├── NotFound               404
    ├── AlreadyExists          409
    ├── Conflict               409  the state does not allow it (ABORTED)
    ├── FailedPrecondition     400  the system is not in the state the call needs
    ├── ResourceExhausted      429
    └── Unavailable            503  a dependency is down

Services raise these; one interceptor turns them into a gRPC status with ``google.rpc`` details
(``ErrorInfo`` with the machine code, ``BadRequest`` with the field violations). Nothing else sets codes.
"""

from __future__ import annotations

import grpc


class MeshError(Exception):
    """Base of every error a service raises on purpose."""

    status: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    code: str = "ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgument(MeshError):
    """The request is malformed as a whole."""

    status = grpc.StatusCode.INVALID_ARGUMENT
    code = "VALIDATION_ERROR"


class InvalidField(InvalidArgument):
    """One field of the request is wrong; ``field`` is its proto JSON path (``workspaceName``)."""

    def __init__(self, field: str, reason: str, *, code: str | None = None) -> None:
        super().__init__(f"{field}: {reason}", code=code)
        self.field = field
        self.reason = reason


class Unauthenticated(MeshError):
    """The end user could not be identified: no token, or a token that is not good."""

    status = grpc.StatusCode.UNAUTHENTICATED
    code = "UNAUTHORIZED"


class Forbidden(MeshError):
    """The caller is known but may not do this."""

    status = grpc.StatusCode.PERMISSION_DENIED
    code = "FORBIDDEN"


class NotFound(MeshError):
    """The thing asked for does not exist, or is not visible to the caller."""

    status = grpc.StatusCode.NOT_FOUND
    code = "NOT_FOUND"


class AlreadyExists(MeshError):
    """Creating something that exists already."""

    status = grpc.StatusCode.ALREADY_EXISTS
    code = "ALREADY_EXISTS"


class Conflict(MeshError):
    """The current state of the resource does not allow the change."""

    status = grpc.StatusCode.ABORTED
    code = "CONFLICT"


class FailedPrecondition(MeshError):
    """The system is not in a state where the call can run (a feature switched off, say)."""

    status = grpc.StatusCode.FAILED_PRECONDITION
    code = "FAILED_PRECONDITION"


class ResourceExhausted(MeshError):
    """A quota or rate limit was hit."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED
    code = "TOO_MANY_REQUESTS"


class Unavailable(MeshError):
    """A dependency (database, Redis, another service) cannot be reached."""

    status = grpc.StatusCode.UNAVAILABLE
    code = "UNAVAILABLE"
