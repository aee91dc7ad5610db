"""What the tests share, written once: people and their tokens, the platform's clients, common setups.

- ``people``: :class:`Person`, the gateway's test login (:func:`login`, :func:`issue_tokens`),
  :func:`refresh`, e-mails and headers;
- ``rest``: calls through the gateway and the setups several folders make (:func:`workspace`,
  :func:`team`, :func:`project`, :func:`join_project`, :func:`upload`, ...);
- ``rpc``: calls straight to a service over mTLS (:func:`bearer`, :func:`rpc_login`) and the details of
  its errors;
- ``stack``: the stack's environment and :class:`Mesh`, its channels;
- ``processes``: a second replica of a service, another gateway in this process;
- ``tokens``: a clock and a JWKS source for token tests;
- ``board_cases``: one request per board route naming another tenant's ids.

The gateway client fixture, ``client``, is in tests/conftest.py, beside the stack it talks to. Test
modules import from here and never from each other (tests/test_support.py checks it).
"""

from tests.support.people import AUTH, Person, authorization, issue_tokens, login, refresh, unique_email
from tests.support.processes import ExtraService, extra_service, in_process_gateway
from tests.support.rest import (
    BOARD,
    NOTI,
    PNG,
    USER,
    Team,
    call,
    join_project,
    project,
    remove_from_workspace,
    team,
    upload,
    workspace,
)
from tests.support.rpc import auth_stub, bearer, error_reason, field_violations, rpc_login
from tests.support.stack import STACK_ENV, Mesh, append_line
from tests.support.tokens import CountingJwks, FakeClock

__all__ = [
    "AUTH",
    "BOARD",
    "NOTI",
    "PNG",
    "STACK_ENV",
    "USER",
    "CountingJwks",
    "ExtraService",
    "FakeClock",
    "Mesh",
    "Person",
    "Team",
    "append_line",
    "auth_stub",
    "authorization",
    "bearer",
    "call",
    "error_reason",
    "extra_service",
    "field_violations",
    "in_process_gateway",
    "issue_tokens",
    "join_project",
    "login",
    "project",
    "refresh",
    "remove_from_workspace",
    "rpc_login",
    "team",
    "unique_email",
    "upload",
    "workspace",
]
