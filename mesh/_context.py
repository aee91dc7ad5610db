"""What the runtime knows about the call being served, reachable from anywhere in its task."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from mesh._errors import Unauthenticated
from mesh._tokens import UserClaims


@dataclass(frozen=True, slots=True)
class CallContext:
    """The served call: who called, for which user, and until when."""

    method: str
    request_id: str
    caller: str | None
    user: UserClaims | None
    # Absolute deadline on the event loop's clock, propagated to calls this one makes.
    deadline: float | None
    traceparent: str | None = None


_current: ContextVar[CallContext | None] = ContextVar("wealist_call", default=None)


def current_call() -> CallContext | None:
    """The call being served by this task, if any."""
    return _current.get()


def current_user() -> UserClaims:
    """The end user of the call being served; UNAUTHENTICATED when the call has none."""
    call = _current.get()
    if call is None or call.user is None:
        raise Unauthenticated("an end-user token is required", code="TOKEN_MISSING")
    return call.user


def current_request_id() -> str | None:
    """The request id of the call being served (for logs)."""
    call = _current.get()
    return call.request_id if call else None
