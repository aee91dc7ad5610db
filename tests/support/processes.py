"""More processes beside the stack: a second replica of a service, another gateway in this process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack import ServiceSpec, StackInfo, build_service_env, free_port
from devstack.supervisor import REPO_ROOT
from gateway.app import create_app
from gateway.settings import GatewaySettings
from mesh import http_server
from tests.support.stack import STACK_ENV


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
