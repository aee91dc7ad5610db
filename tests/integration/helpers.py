"""Small helpers the integration tests share: stubs, bearer metadata, error details, extra services."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2
from wealist.auth.v1 import auth_pb2, auth_pb2_grpc

from devstack import ServiceSpec, StackInfo, build_service_env, free_port
from devstack.supervisor import REPO_ROOT
from gateway.app import create_app
from gateway.settings import GatewaySettings
from mesh import http_server
from tests.conftest import STACK_ENV, Mesh


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


@dataclass(frozen=True, slots=True)
class ExtraService:
    """A service process started beside the stack's own, with its own ports and log file."""

    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def addr(self) -> str:
        return self.spec.addr

    def output(self) -> str:
        """What the process has written so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def extra_service(
    stack: StackInfo, name: str, env: Mapping[str, str], *, timeout: float = 30.0
) -> Iterator[ExtraService]:
    """Run one more ``python -m services.<name>`` on free ports until the block ends.

    Its environment is the stack's (state folder, infrastructure, the stack's service addresses, the test
    switches) with ``env`` on top; the block starts once its ``/health`` answers 200, and on the way out
    it gets SIGTERM and is waited for.
    """
    grpc_port = free_port()
    spec = ServiceSpec(name, f"services.{name}", grpc_port, free_port())
    full_env = build_service_env(
        spec,
        stack.services.values(),
        state_dir=stack.state_dir,
        infra=stack.infra,
        extra_env={**STACK_ENV, **env},
    )
    log_path = stack.state_dir / f"extra-{name}-{grpc_port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", spec.module],
            env=full_env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    service = ExtraService(spec, process, log_path)
    try:
        _wait_healthy(service, timeout)
        yield service
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(service: ExtraService, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    # trust_env=False: a proxy from the environment must not capture requests to 127.0.0.1.
    with httpx.Client(trust_env=False, timeout=1.0) as http:
        while True:
            code = service.process.poll()
            if code is not None:
                pytest.fail(f"{service.spec.name} exited with {code} at start:\n{service.output()}")
            try:
                if http.get(service.spec.health_url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{service.spec.name} not healthy after {timeout:.0f} s:\n{service.output()}")
            time.sleep(0.1)


@contextlib.asynccontextmanager
async def in_process_gateway(stack: StackInfo, **backends: str) -> AsyncIterator[str]:
    """Another gateway replica (the real app under uvicorn, in this process) until the block ends.

    It reaches every backend as the stack runs it, except those named in ``backends`` (workload →
    host:port, a second replica started with :func:`extra_service`, say). Yields its base URL.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    addresses = {name: spec.addr for name, spec in stack.services.items() if name != "gateway"}
    settings = GatewaySettings(
        state_dir=stack.state_dir, http_port=port, redis_url=stack.redis_url, log_json=False
    )
    app = create_app(settings, addresses={**addresses, **backends})
    server = http_server(app)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(100):
        if server.started:
            break
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        await app.state.gateway.close()
