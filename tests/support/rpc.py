"""Calls straight to the services over mTLS: bearer metadata, the test login, an error's details."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2
from wealist.auth.v1 import auth_pb2, auth_pb2_grpc

from tests.support.people import unique_email
from tests.support.stack import Mesh


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """``authorization`` metadata for a user token."""
    return (("authorization", f"Bearer {token}"),)


def auth_stub(mesh: Mesh, *, as_workload: str = "gateway") -> auth_pb2_grpc.AuthServiceAsyncStub:
    """Auth's public API, dialled as ``as_workload`` (the gateway unless told)."""
    return auth_pb2_grpc.AuthServiceStub(mesh.channel("auth", as_workload=as_workload))


async def rpc_login(mesh: Mesh, email: str | None = None) -> auth_pb2.IssueTestTokenResponse:
    """A token pair from auth's test login over gRPC, for a fresh user unless an e-mail is given."""
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
