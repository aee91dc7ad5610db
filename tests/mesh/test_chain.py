"""The server chain, wrapped around handlers when they are registered (mesh/_interceptors.py).

Generated code registers each service twice: as a generic handler and as registered method handlers (the
server prefers the latter). Both must come out wrapped, or a method would be served without its access
check; these tests serve a service registered each way over real mTLS and call it as several workloads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from mesh import ensure_dev_pki, load_tls, open_channel
from mesh._access import MethodAccess, UserAuth
from mesh._interceptors import ChainedServer, MeshChain
from mesh._metrics import ServerMetrics

pytestmark = pytest.mark.asyncio

GENERIC, REGISTERED = "meshtest.Generic", "meshtest.Registered"
WORKLOADS = ["echo", "gateway", "user"]


def _access(path: str) -> MethodAccess:
    return MethodAccess(path, frozenset({"gateway"}), UserAuth.REFUSED, False, False, False, False)


async def _echo(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return request


def _handlers() -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    # "Open" has an access rule (gateway only); "Unlisted" has none and must be refused to everyone.
    return {name: grpc.unary_unary_rpc_method_handler(_echo) for name in ("Open", "Unlisted")}


@pytest_asyncio.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Path, ServerMetrics]]:
    ensure_dev_pki(tmp_path, WORKLOADS)
    metrics = ServerMetrics()
    chain = MeshChain(
        table={
            f"/{GENERIC}/Open": _access(f"/{GENERIC}/Open"),
            f"/{REGISTERED}/Open": _access(f"/{REGISTERED}/Open"),
        },
        metrics=metrics,
        verifier=None,
        istio_mode=False,
        namespace="wealist",
        default_deadline=5.0,
    )
    server = ChainedServer(grpc.aio.server(), chain)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(GENERIC, _handlers())])
    server.add_registered_method_handlers(REGISTERED, _handlers())
    tls = load_tls(tmp_path, "echo")
    credentials = grpc.ssl_server_credentials(
        [(tls.key, tls.cert)], root_certificates=tls.ca, require_client_auth=True
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    yield f"127.0.0.1:{port}", tmp_path, metrics
    await server.stop(None)


async def _call(served: tuple[str, Path, ServerMetrics], as_workload: str, path: str) -> grpc.StatusCode:
    address, state, _ = served
    channel = open_channel(address, workload="echo", tls=load_tls(state, as_workload), propagate=False)
    try:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(path)
        await call(b"ping", timeout=5)
    except grpc.aio.AioRpcError as error:
        return error.code()
    finally:
        await channel.close()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("service", [GENERIC, REGISTERED])
async def test_the_allowed_caller_is_served(served: tuple[str, Path, ServerMetrics], service: str) -> None:
    assert await _call(served, "gateway", f"/{service}/Open") is grpc.StatusCode.OK


@pytest.mark.parametrize("service", [GENERIC, REGISTERED])
async def test_another_workload_is_refused(served: tuple[str, Path, ServerMetrics], service: str) -> None:
    assert await _call(served, "user", f"/{service}/Open") is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("service", [GENERIC, REGISTERED])
@pytest.mark.parametrize("caller", ["gateway", "user"])
async def test_a_method_without_an_access_rule_is_refused_to_everyone(
    served: tuple[str, Path, ServerMetrics], service: str, caller: str
) -> None:
    assert await _call(served, caller, f"/{service}/Unlisted") is grpc.StatusCode.PERMISSION_DENIED


async def test_an_unknown_method_is_unimplemented(served: tuple[str, Path, ServerMetrics]) -> None:
    assert await _call(served, "gateway", f"/{GENERIC}/Missing") is grpc.StatusCode.UNIMPLEMENTED


async def test_every_call_is_counted_by_method_and_code(served: tuple[str, Path, ServerMetrics]) -> None:
    metrics = served[2]
    for caller in ("gateway", "gateway", "user"):
        await _call(served, caller, f"/{REGISTERED}/Open")
    handled = metrics.handled.labels

    def counted() -> tuple[float, float, float]:
        return (
            handled("unary", REGISTERED, "Open", "OK")._value.get(),
            handled("unary", REGISTERED, "Open", "PERMISSION_DENIED")._value.get(),
            metrics.started.labels("unary", REGISTERED, "Open")._value.get(),
        )

    # The server counts a call as its handler ends, which can be just after the client has its answer.
    for _ in range(100):
        if counted() == (2, 1, 3):
            break
        await asyncio.sleep(0.02)
    assert counted() == (2, 1, 3)
