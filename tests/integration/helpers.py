"""Small helpers the integration tests share: stubs, bearer metadata, error details."""

from __future__ import annotations

import uuid

import grpc
from google.rpc import error_details_pb2, status_pb2
from wealist.auth.v1 import auth_pb2, auth_pb2_grpc

from tests.conftest import Mesh


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """``authorization`` metadata for a user token."""
    return (("authorization", f"Bearer {token}"),)


def unique_email(prefix: str = "user") -> str:
    """An e-mail no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def auth_stub(mesh: Mesh, *, as_workload: str = "gateway") -> auth_pb2_grpc.AuthServiceAsyncStub:
    return auth_pb2_grpc.AuthServiceStub(mesh.channel("auth", as_workload=as_workload))


async def login(mesh: Mesh, email: str | None = None) -> auth_pb2.IssueTestTokenResponse:
    """A token pair from the test login, for a fresh user unless an e-mail is given."""
    request = auth_pb2.IssueTestTokenRequest(email=email or unique_email())
    response: auth_pb2.IssueTestTokenResponse = await auth_stub(mesh).IssueTestToken(request)
    return response


def error_reason(error: grpc.aio.AioRpcError) -> str | None:
    """The machine code in the error's ``google.rpc.ErrorInfo`` detail."""
    for detail in _details(error).details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return None


def field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    """The fields named by the error's ``google.rpc.BadRequest`` detail."""
    fields = []
    for detail in _details(error).details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            fields += [violation.field for violation in bad.field_violations]
    return fields


def _details(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return status_pb2.Status()
