"""Access tokens never reach the gateway's logs.

The web client sends its token as ``?token=`` on sockets and event streams, and uvicorn logs each
WebSocket's URL (and each request's, when access logs are on). The last test starts the gateway's entry
point (``python -m gateway``) beside the stack, as devstack starts it, opens a WebSocket with a real
token through it, and reads everything the process wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from starlette.datastructures import URL
from uvicorn.logging import AccessFormatter

from devstack import StackInfo
from devstack.supervisor import ServiceSpec, build_service_env
from gateway.redact import REDACTED, TokenRedactor, redact, redact_uvicorn_logs
from mesh import JsonFormatter
from tests.support import STACK_ENV, login

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"/ws/project/p?token={JWT}", f"/ws/project/p?token={REDACTED}"),
        (f"/x?room=1&token={JWT}&b=2", f"/x?room=1&token={REDACTED}&b=2"),
        (f"/x?token={JWT}#frag", f"/x?token={REDACTED}#frag"),
        (f"/x?%74oken={JWT}", f"/x?%74oken={REDACTED}"),
        (f'"WebSocket /x?token={JWT}" [accepted]', f'"WebSocket /x?token={REDACTED}" [accepted]'),
        # Already JSON text: the escaped quote after the value stays intact.
        (
            f'{{"message": "\\"GET /x?t=1&token={JWT}\\" 2"}}',
            f'{{"message": "\\"GET /x?t=1&token={REDACTED}\\" 2"}}',
        ),
        (f"/x?token={JWT}&token={JWT}", f"/x?token={REDACTED}&token={REDACTED}"),
        ("/x?room=1&access=2", "/x?room=1&access=2"),
        ("/x?mytoken=1&tokens=2", "/x?mytoken=1&tokens=2"),
        ("/x?token=", "/x?token="),
        ("no query here", "no query here"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def _record(name: str, msg: str, args: tuple[object, ...]) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)


def test_a_uvicorn_websocket_line_is_redacted() -> None:
    # As uvicorn's websockets protocol logs an accepted handshake.
    record = _record(
        "uvicorn.error",
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", f"/api/svc/board/ws/p?token={JWT}"),
    )
    assert TokenRedactor().filter(record)
    message = record.getMessage()
    assert JWT not in message
    assert message == f'127.0.0.1:5000 - "WebSocket /api/svc/board/ws/p?token={REDACTED}" [accepted]'
    assert JWT not in JsonFormatter("gateway").format(record)


def test_an_access_line_keeps_its_arguments_for_uvicorns_formatter() -> None:
    record = _record(
        "uvicorn.access",
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/api/svc/noti/api/notifications/stream?token={JWT}", "1.1", 200),
    )
    TokenRedactor().filter(record)
    assert isinstance(record.args, tuple)
    assert len(record.args) == 5
    line = AccessFormatter("%(message)s", use_colors=False).format(record)
    assert JWT not in line
    assert f"stream?token={REDACTED}" in line


def test_an_argument_of_another_type_is_redacted_as_text() -> None:
    record = _record("uvicorn.error", "opening %s", (URL(f"http://h/ws?token={JWT}"),))
    TokenRedactor().filter(record)
    assert record.getMessage() == f"opening http://h/ws?token={REDACTED}"


@contextlib.contextmanager
def _captured(name: str) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger(name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_create_app_installs_the_redactor_on_the_uvicorn_loggers() -> None:
    redact_uvicorn_logs()
    redact_uvicorn_logs()  # idempotent
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        filters = [f for f in logging.getLogger(name).filters if isinstance(f, TokenRedactor)]
        assert len(filters) == 1
    with _captured("uvicorn.error") as stream:
        logging.getLogger("uvicorn.error").info('%s - "WebSocket %s" [accepted]', "c", f"/ws?token={JWT}")
    assert JWT not in stream.getvalue()
    assert REDACTED in stream.getvalue()


# ---- through the real gateway process ----


@pytest.fixture
def gateway_process(stack: StackInfo, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``python -m gateway`` as the stack runs it (same environment, another port), its stdout and
    stderr written to a file of its own; (base URL, log file)."""
    spec = ServiceSpec(name="gateway", module="gateway", grpc_port=None, http_port=_free_port())
    env = build_service_env(
        spec,
        [*stack.services.values(), spec],
        state_dir=stack.state_dir,
        infra=stack.infra,
        base_env={**os.environ, **STACK_ENV},
    )
    log = tmp_path / "gateway.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway"], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{spec.http_base}/health", timeout=1, trust_env=False).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield spec.http_base, log
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_socket_token_is_not_in_the_gateway_process_log(gateway_process: tuple[str, Path]) -> None:
    gateway, log = gateway_process
    async with httpx.AsyncClient(base_url=gateway, timeout=10, trust_env=False) as client:
        token = (await login(client, "redact")).token
    project = uuid.uuid4()
    path = f"/api/svc/board/ws/project/{project}"
    url = gateway.replace("http://", "ws://") + f"{path}?token={token}"
    async with websockets.connect(url, open_timeout=10) as socket:
        # Accepted (uvicorn logs the handshake with its URL); board then refuses a project that does not
        # exist, or would push its events.
        with contextlib.suppress(TimeoutError, websockets.ConnectionClosed):
            await asyncio.wait_for(socket.recv(), 5)
    accepted = f"WebSocket {path}?token={REDACTED}"
    for _ in range(100):
        text = log.read_text()
        if accepted in text:
            break
        await asyncio.sleep(0.1)
    assert token not in text
    assert token.split(".")[2] not in text  # not even the signature
    line = next((line for line in text.splitlines() if accepted in line), None)
    assert line is not None, text
    assert json.loads(line)["logger"] == "uvicorn.error"
