"""Fixtures of the gateway tests: the echo service and an in-process gateway in front of it, once a session.

What they run is in tests/support/echo.py (bench/gateway.py and tests/istio use it too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import ModuleType

import pytest
import pytest_asyncio

from devstack import StackInfo
from tests.support.echo import (
    EchoBackend,
    GatewayUnderTest,
    compile_echo,
    import_echo,
    serve_echo,
    serve_gateway,
)


@pytest.fixture(scope="session")
def echo_modules(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType]:
    """``echo_pb2`` and ``echo_pb2_grpc``, generated into a temporary folder."""
    out = tmp_path_factory.mktemp("echo-gen")
    compile_echo(out)
    return import_echo(out)


@pytest_asyncio.fixture(scope="session")
async def echo_backend(
    stack: StackInfo, echo_modules: tuple[ModuleType, ModuleType]
) -> AsyncIterator[EchoBackend]:
    """The test service, served by the shared runtime over mTLS on a free port."""
    async with serve_echo(stack, echo_modules) as backend:
        yield backend


@pytest_asyncio.fixture(scope="session")
async def gateway(stack: StackInfo, echo_backend: EchoBackend) -> AsyncIterator[GatewayUnderTest]:
    """The gateway app under a real uvicorn on a free port, routing the platform and the echo service."""
    async with serve_gateway(stack, echo_backend) as served:
        yield served
