"""A gateway served in-process beside the stack, with a test-only streaming service behind it.

The fixtures that start them once per session are in tests/gateway/conftest.py.

The real services have no streaming RPC yet, so ``meshtest.v1.EchoService`` (tests/gateway/protos)
gives the gateway one method of every shape. It is compiled at session start, served by the shared
runtime over mTLS like any service, and routed by a gateway built from the platform's descriptors plus
its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import httpx
from grpc_tools import protoc

from devstack import StackInfo
from gateway.app import create_app
from gateway.server import GatewayServer, server_config
from gateway.settings import GatewaySettings
from mesh import (
    Channels,
    Hosted,
    MeshSettings,
    RemoteJwks,
    Runtime,
    all_services,
    current_call,
    ensure_dev_pki,
    load_tls,
)
from tools.protogen import PROTO_ROOT, _googleapis_root

PROTOS = Path(__file__).parent.parent / "gateway" / "protos"


def compile_echo(out: Path) -> None:
    """Generate ``meshtest.v1.echo_pb2`` and ``echo_pb2_grpc`` into ``out`` (tests and bench/gateway.py)."""
    well_known = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"-I{_googleapis_root()}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        "meshtest/v1/echo.proto",
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on meshtest/v1/echo.proto")


def import_echo(generated: Path) -> tuple[ModuleType, ModuleType]:
    """The echo modules generated into ``generated``."""
    sys.path.insert(0, str(generated))
    return importlib.import_module("meshtest.v1.echo_pb2"), importlib.import_module(
        "meshtest.v1.echo_pb2_grpc"
    )


def echo_servicer(pb2: ModuleType, pb2_grpc: ModuleType) -> Any:
    def user_id() -> str:
        call = current_call()
        return call.user.user_id if call and call.user else ""

    def workspace() -> str:
        return ""

    class Echo(pb2_grpc.EchoServiceServicer):  # type: ignore[misc,name-defined]
        async def Echo(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            metadata = dict(context.invocation_metadata() or ())
            if request.http_code:
                await context.send_initial_metadata((("x-http-code", request.http_code),))
            if request.trailing_http_code:
                # Added to what the runtime set (x-request-id): setting trailing metadata replaces it.
                trailing = (*(context.trailing_metadata() or ()), ("x-http-code", request.trailing_http_code))
                context.set_trailing_metadata(trailing)
            return pb2.EchoResponse(
                room=request.room,
                text=request.text,
                count=request.count,
                tags=request.tags,
                at=request.at if request.HasField("at") else None,
                loud=request.loud,
                user_id=user_id(),
                workspace_id=str(metadata.get("x-workspace-id", workspace())),
            )

        async def CallInfo(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            metadata = dict(context.invocation_metadata() or ())
            return pb2.CallInfoResponse(
                deadline_seconds=context.time_remaining() or 0.0,
                request_id=str(metadata.get("x-request-id", "")),
            )

        async def WhoAmI(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            return pb2.WhoAmIResponse(user_id=user_id())

        async def Fail(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(
                grpc.StatusCode(next(c for c in grpc.StatusCode if c.value[0] == request.code).value),
                "failing on purpose",
            )

        async def Ticks(
            self, request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            for number in range(request.count):
                await asyncio.sleep(request.interval_ms / 1000)
                yield pb2.Tick(number=number, user_id=user_id())
            if request.count == 0:
                await asyncio.Event().wait()  # forever: the client decides when it ends

        async def Chat(
            self, requests: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            # The first request message is the gateway's opening one (path and query, no client frame):
            # answered at once, so the client hears from the service before it has said anything.
            frames = aiter(requests)
            opening = await anext(frames, None)
            if opening is None:
                return
            yield pb2.ChatFrame(room=opening.room, type="joined", text=opening.text, user_id=user_id())
            async for frame in frames:
                if frame.type == "ping":
                    yield pb2.ChatFrame(room=frame.room, type="pong", user_id=user_id())
                else:
                    yield pb2.ChatFrame(room=frame.room, type="echo", text=frame.text, user_id=user_id())

    return Echo()


@dataclass
class EchoBackend:
    address: str
    runtime: Runtime
    pb2: ModuleType


@contextlib.asynccontextmanager
async def serve_echo(
    stack: StackInfo, echo_modules: tuple[ModuleType, ModuleType]
) -> AsyncIterator[EchoBackend]:
    """The test service, served by the shared runtime over mTLS on a free port, until the block ends."""
    pb2, pb2_grpc = echo_modules
    ensure_dev_pki(stack.state_dir, ["echo"])
    settings = MeshSettings(
        workload="echo",
        state_dir=stack.state_dir,
        grpc_port=0,
        http_port=0,
        redis_url=stack.redis_url,
        auth_addr=stack.services["auth"].addr,
        log_json=False,
    )
    runtime = Runtime(settings)
    # "echo" is no workload of the platform, so auth would refuse it the JWKS: fetch it as board does.
    as_board = Channels(settings, load_tls(stack.state_dir, "board"))
    runtime.verify_users_with(RemoteJwks(as_board))
    servicer = echo_servicer(pb2, pb2_grpc)
    started = asyncio.Event()
    service = pb2.DESCRIPTOR.services_by_name["EchoService"]
    task = asyncio.create_task(
        runtime.serve(
            [Hosted(service, lambda server: pb2_grpc.add_EchoServiceServicer_to_server(servicer, server))],
            started=started,
        )
    )
    await asyncio.wait_for(started.wait(), 10)
    try:
        yield EchoBackend(f"127.0.0.1:{runtime.grpc_port}", runtime, pb2)
    finally:
        runtime.request_stop()
        await task
        await as_board.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class GatewayUnderTest:
    base_url: str
    client: httpx.AsyncClient
    settings: GatewaySettings


@contextlib.asynccontextmanager
async def serve_gateway(
    stack: StackInfo, echo_backend: EchoBackend, **overrides: Any
) -> AsyncIterator[GatewayUnderTest]:
    """A gateway app under a real uvicorn on a free port, routing the platform and the echo service.

    ``overrides`` are settings beside the test defaults (short pings and rechecks, a 64 KiB body limit).
    """
    port = _free_port()
    settings = GatewaySettings(
        **{
            "state_dir": stack.state_dir,
            "http_port": port,
            "redis_url": stack.redis_url,
            "max_body_bytes": 64 * 1024,
            "sse_ping_seconds": 0.2,
            "stream_recheck_seconds": 0.2,
            "log_json": False,
            **overrides,
        }
    )
    echo_service = echo_backend.pb2.DESCRIPTOR.services_by_name["EchoService"]
    app = create_app(
        settings,
        services=[*all_services(), echo_service],
        # Every service of the stack where it runs (whatever services exist by now), and the echo service.
        addresses={
            **{name: spec.addr for name, spec in stack.services.items() if spec.grpc_port is not None},
            "echo": echo_backend.address,
        },
    )
    server = GatewayServer(server_config(app, settings, lifespan="off", loop="none"), quiet=True)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.setblocking(False)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for _ in range(100):
                if server.started:
                    break
                await asyncio.sleep(0.05)
            yield GatewayUnderTest(base, client, settings)
    finally:
        server.should_exit = True
        await task
        await app.state.gateway.close()
