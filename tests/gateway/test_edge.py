"""The gateway's edge rules, through a real gateway over HTTP and WebSocket (issue 12, the gateway's part).

Each test here failed on the gateway before these rules: a 500 (or a hang, or a socket closed with
1000) where a 4xx in the error envelope is due.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import websockets
from websockets.exceptions import ConnectionClosed

from devstack import StackInfo
from gateway.app import create_app
from services.auth.keys import KeyRing
from services.auth.tokens import TokenIssuer
from tests.support import authorization, issue_tokens
from tests.support.echo import EchoBackend, GatewayUnderTest, serve_gateway

ECHO = "/api/svc/echo"
ISSUER = "wealist-auth-service"


def _error(reply: httpx.Response) -> dict[str, str]:
    """The error envelope's inner object (and that the body is the envelope)."""
    assert reply.headers["content-type"].startswith("application/json"), reply.text
    body = reply.json()
    assert set(body) == {"error"}, body
    error: dict[str, str] = body["error"]
    assert {"code", "message"} <= set(error), error
    return error


def _ws(gateway: GatewayUnderTest, path: str) -> str:
    return gateway.base_url.replace("http", "ws", 1) + path


# --- malformed input: 400s, not 500s --------------------------------------------------------------------


async def test_json_nested_too_deeply_is_a_400_naming_the_body(gateway: GatewayUnderTest) -> None:
    deep = b"[" * 5000 + b"]" * 5000
    for url in (f"{ECHO}/api/rooms/r/echo", "/api/svc/auth/api/auth/refresh"):  # the second needs no token
        reply = await gateway.client.post(url, content=deep, headers={"content-type": "application/json"})
        assert reply.status_code == 400, (url, reply.text)
        assert _error(reply)["field"] == "body"
    within = b'{"text": "ok", "tags": ["a"]}'
    reply = await gateway.client.post(f"{ECHO}/api/rooms/r/echo", content=within)
    assert reply.status_code == 201


async def test_a_json_query_filter_nested_too_deeply_is_a_400_naming_it(gateway: GatewayUnderTest) -> None:
    """``customFields`` is declared a JSON object (wealist.mesh.v1.field): checked at the edge."""
    pair = await issue_tokens(gateway.client)
    url = f"/api/svc/board/api/boards/project/{uuid.uuid4()}"
    auth = authorization(pair["accessToken"])
    for value in ("[" * 3000 + "]" * 3000, '{"a":' * 100 + "1" + "}" * 100, "{not json", "[1]"):
        reply = await gateway.client.get(url, params={"customFields": value}, headers=auth)
        assert reply.status_code == 400, (value[:20], reply.text)
        error = _error(reply)
        assert (error["code"], error["field"]) == ("VALIDATION_ERROR", "customFields"), value[:20]


async def test_a_nul_character_anywhere_is_a_400_naming_the_field(gateway: GatewayUnderTest) -> None:
    """Postgres refuses NUL in text: a stored string holding one was a 500."""
    pair = await issue_tokens(gateway.client)
    auth = authorization(pair["accessToken"])
    created = await gateway.client.post(
        "/api/svc/user/api/workspaces/create", json={"workspaceName": "a\u0000b"}, headers=auth
    )
    assert created.status_code == 400, created.text
    assert _error(created)["field"] == "workspaceName"
    nested = await gateway.client.post(
        f"{ECHO}/api/rooms/r/echo", json={"text": "ok", "tags": ["a", "b\u0000"]}
    )
    assert nested.status_code == 400
    assert _error(nested)["field"] == "tags[1]"
    path = await gateway.client.get("/api/svc/board/api/boards/%00", headers=auth)
    assert path.status_code == 400
    assert _error(path)["field"] == "boardId"
    query = await gateway.client.get(f"{ECHO}/api/rooms/r/echo", params={"text": "a\u0000"})
    assert query.status_code == 400
    assert _error(query)["field"] == "text"
    # An escaped backslash before "u0000" is no NUL: it stays a string like any other.
    literal = await gateway.client.post(f"{ECHO}/api/rooms/r/echo", content=b'{"text": "\\\\u0000"}')
    assert literal.status_code == 201
    assert literal.json()["data"]["text"] == "\\u0000"


async def test_a_path_that_is_not_utf8_is_a_400_naming_the_variable(gateway: GatewayUnderTest) -> None:
    for prefix in ("/api/svc", "/svc"):
        reply = await gateway.client.get(f"{prefix}/board/api/boards/%c0")
        assert reply.status_code == 400, reply.text
        assert _error(reply)["field"] == "boardId"
    room = await gateway.client.get(f"{ECHO}/api/rooms/%ff%fe/echo")
    assert room.status_code == 400
    assert _error(room)["field"] == "room"


async def test_a_socket_path_that_is_not_utf8_is_closed_with_4400(gateway: GatewayUnderTest) -> None:
    with pytest.raises(ConnectionClosed) as closed:
        async with websockets.connect(_ws(gateway, f"{ECHO}/ws/rooms/%c0")) as socket:
            await socket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4400


@pytest.mark.parametrize("header", ["X-Workspace-Id", "traceparent", "tracestate"])
async def test_a_forwarded_header_that_is_not_ascii_is_a_400_naming_it(
    gateway: GatewayUnderTest, header: str
) -> None:
    for value in ("caf\u00e9".encode(), b"\xff\xfe", b"tab\there"):
        reply = await gateway.client.get(f"{ECHO}/api/rooms/r/echo", headers=[(header.encode(), value)])
        assert reply.status_code == 400, (header, value, reply.text)
        assert _error(reply)["field"] == header
    # Also where no token is needed on a platform route.
    jwks = await gateway.client.get("/svc/auth/.well-known/jwks.json", headers=[(header.encode(), b"\xe9")])
    assert jwks.status_code == 400
    assert _error(jwks)["field"] == header


async def test_an_oversized_forwarded_header_is_a_431(gateway: GatewayUnderTest) -> None:
    limit = gateway.settings.max_forwarded_header_bytes
    reply = await gateway.client.get(f"{ECHO}/api/rooms/r/echo", headers={"X-Workspace-Id": "w" * 20_000})
    assert reply.status_code == 431, reply.text
    error = _error(reply)
    assert (error["code"], error["field"]) == ("HEADER_TOO_LARGE", "X-Workspace-Id")
    fits = await gateway.client.get(
        f"{ECHO}/api/rooms/r/echo", headers={"tracestate": "k=" + "v" * (limit - 2)}
    )
    assert fits.status_code == 201, fits.text


async def test_only_a_short_safe_request_id_is_kept(gateway: GatewayUnderTest) -> None:
    kept = await gateway.client.get(f"{ECHO}/api/call-info", headers={"X-Request-ID": "abc.DEF_1-2"})
    assert kept.headers["x-request-id"] == "abc.DEF_1-2"
    assert kept.json()["requestId"] == "abc.DEF_1-2"
    for unsafe in (b"x" * 65, b"caf\xc3\xa9", b"a b", b"<script>", b"\xff"):
        reply = await gateway.client.get(f"{ECHO}/api/call-info", headers=[(b"x-request-id", unsafe)])
        assert reply.status_code == 200, (unsafe, reply.text)
        made = reply.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made), made
        assert reply.json()["requestId"] == made  # the service saw the gateway's id, not the client's


async def test_grpc_timeout_is_clamped_to_the_workloads_maximum(gateway: GatewayUnderTest) -> None:
    longest = gateway.settings.max_deadline_for("echo")
    slack = 0.5  # gRPC rounds a deadline up when it encodes it
    asked = await gateway.client.get(f"{ECHO}/api/call-info", headers={"Grpc-Timeout": "5S"})
    assert 4 < asked.json()["deadlineSeconds"] <= 5 + slack
    for header in ("10H", "99999999H", "600000S"):
        reply = await gateway.client.get(f"{ECHO}/api/call-info", headers={"Grpc-Timeout": header})
        assert reply.status_code == 200
        assert longest - 5 < reply.json()["deadlineSeconds"] <= longest + slack, header
    default = await gateway.client.get(f"{ECHO}/api/call-info")
    assert 0 < default.json()["deadlineSeconds"] <= gateway.settings.deadline_for("echo") + slack


async def test_unknown_prefixes_answer_the_json_envelope(gateway: GatewayUnderTest) -> None:
    for path in ("/API/SVC/board/api/boards", "/Svc/board/api/boards", "/nowhere", "/api/svc/"):
        reply = await gateway.client.get(path)
        assert reply.status_code == 404, path
        assert _error(reply)["code"] == "NOT_FOUND", path
    # httpx folds a leading "//" into one: the path goes out as sent on a socket of its own.
    answer = await _raw(
        gateway, b"GET //api/svc/board/api/boards HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404"), answer
    assert b"application/json" in head
    assert json.loads(body)["error"]["code"] == "NOT_FOUND"


async def test_the_served_document_carries_the_proto_comments(gateway: GatewayUnderTest) -> None:
    document = (await gateway.client.get("/openapi.json")).json()
    refresh = document["paths"]["/api/svc/auth/api/auth/refresh"]["post"]
    assert refresh["description"].startswith("Trades a refresh token for a new pair")
    profile = document["paths"]["/api/svc/user/api/profiles/me"]["get"]
    assert {"name": "X-Workspace-Id", "in": "header", "required": True}.items() <= profile["parameters"][
        0
    ].items()
    assert "/api/svc/board/api/boards/{boardId}" in document["paths"]


# --- the contract's health routes under each service prefix ---------------------------------------------


async def test_each_service_answers_its_health_routes(gateway: GatewayUnderTest) -> None:
    for workload in ("board", "user", "noti", "echo"):
        for prefix in ("/svc", "/api/svc"):
            live = await gateway.client.get(f"{prefix}/{workload}/health/live")
            assert live.status_code == 200, (workload, live.text)
            assert live.json() == {"status": "alive"}
            for path in ("/health/ready", "/health"):
                ready = await gateway.client.get(f"{prefix}/{workload}{path}")
                assert ready.status_code == 200, (workload, path, ready.text)
                assert ready.json() == {"status": "ready", "checks": {"grpc": "SERVING"}}
    # A route a service declares itself wins: auth's own /health.
    own = await gateway.client.get("/svc/auth/health")
    assert own.status_code == 200
    assert own.json().get("checks") is None
    assert (await gateway.client.get("/svc/nope/health/live")).status_code == 404


async def test_a_stopped_backend_is_not_ready(echo_backend: EchoBackend, gateway: GatewayUnderTest) -> None:
    service = echo_backend.pb2.DESCRIPTOR.services_by_name["EchoService"]
    app = create_app(gateway.settings, services=[service], addresses={"echo": "127.0.0.1:9"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        live = await client.get("/svc/echo/health/live")
        ready = await client.get("/svc/echo/health/ready")
    assert live.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert ready.json()["checks"]["grpc"] != "SERVING"
    await app.state.gateway.close()


# --- streams ---------------------------------------------------------------------------------------------


async def test_a_deep_websocket_frame_is_answered_with_an_error_frame(gateway: GatewayUnderTest) -> None:
    pair = await issue_tokens(gateway.client)
    async with websockets.connect(
        _ws(gateway, f"{ECHO}/ws/rooms/deep?token={pair['accessToken']}")
    ) as socket:
        assert json.loads(await asyncio.wait_for(socket.recv(), 5))["type"] == "joined"
        for bad in ("[" * 3000 + "]" * 3000, "{nope", '"just a string"', b"\xff\xfe"):
            await socket.send(bad)
            told = json.loads(await asyncio.wait_for(socket.recv(), 5))
            assert told["error"]["code"] == "BAD_FRAME", bad
        # The socket is still open and serving.
        await socket.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(socket.recv(), 5))["type"] == "pong"


async def test_a_websocket_message_over_the_limit_closes_with_1009(gateway: GatewayUnderTest) -> None:
    pair = await issue_tokens(gateway.client)
    limit = gateway.settings.max_ws_message_bytes
    url = _ws(gateway, f"{ECHO}/ws/rooms/big?token={pair['accessToken']}")
    async with websockets.connect(url, max_size=None) as socket:
        assert json.loads(await asyncio.wait_for(socket.recv(), 5))["type"] == "joined"
        await socket.send(json.dumps({"type": "say", "text": "x" * (limit // 2)}))
        assert json.loads(await asyncio.wait_for(socket.recv(), 5))["type"] == "echo"
        await socket.send(json.dumps({"type": "say", "text": "x" * (limit + 1)}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


def _short_lived(stack: StackInfo, user_id: str, seconds: int) -> str:
    """An access token of ``user_id`` signed by the running auth's key, valid for ``seconds``."""
    ring = KeyRing.load_or_create(stack.state_dir / "auth" / "keys", retire_after_seconds=604800)
    issuer = TokenIssuer(keys=ring, issuer=ISSUER, access_ttl=seconds)
    return issuer.issue_pair(user_id=user_id, email=None).access_token


async def test_an_open_sse_stream_ends_when_its_token_expires(
    stack: StackInfo, gateway: GatewayUnderTest
) -> None:
    pair = await issue_tokens(gateway.client)
    token = _short_lived(stack, pair["userId"], 2)
    events: list[tuple[str, str]] = []
    started = time.monotonic()

    async def read() -> None:
        params = {"count": "0", "token": token}  # a stream that never ends by itself
        async with gateway.client.stream("GET", f"{ECHO}/api/ticks", params=params) as reply:
            assert reply.status_code == 200
            name = ""
            async for line in reply.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, line[6:]))

    await asyncio.wait_for(read(), 10)
    assert [name for name, _ in events] == ["connected", "error"]
    assert json.loads(events[1][1])["error"]["code"] == "TOKEN_EXPIRED"
    assert time.monotonic() - started >= 1


async def test_an_open_websocket_is_closed_when_its_token_expires(
    stack: StackInfo, gateway: GatewayUnderTest
) -> None:
    pair = await issue_tokens(gateway.client)
    token = _short_lived(stack, pair["userId"], 2)
    async with websockets.connect(_ws(gateway, f"{ECHO}/ws/rooms/clock?token={token}")) as socket:
        assert json.loads(await asyncio.wait_for(socket.recv(), 5))["type"] == "joined"
        told = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert told["error"]["code"] == "TOKEN_EXPIRED"
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_a_stream_refuses_a_malformed_authorization_header(gateway: GatewayUnderTest) -> None:
    """One rule for every transport: a header that is sent must be a Bearer; ?token= does not cover it."""
    pair = await issue_tokens(gateway.client)
    params = {"count": "1", "token": pair["accessToken"]}
    reply = await gateway.client.get(
        f"{ECHO}/api/ticks", params=params, headers={"Authorization": "Basic eA=="}
    )
    assert reply.status_code == 401
    assert _error(reply)["code"] == "TOKEN_MALFORMED"
    url = _ws(gateway, f"{ECHO}/ws/rooms/r?token={pair['accessToken']}")
    with pytest.raises(ConnectionClosed) as closed:
        async with websockets.connect(url, additional_headers={"Authorization": "Basic eA=="}) as socket:
            await socket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


# --- slow clients ----------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module")
async def strict(stack: StackInfo, echo_backend: EchoBackend) -> AsyncIterator[GatewayUnderTest]:
    """A gateway of its own with short client timeouts and room for two requests at a time."""
    async with serve_gateway(
        stack,
        echo_backend,
        header_timeout_seconds=0.5,
        body_idle_timeout_seconds=0.5,
        max_concurrent_requests=2,
    ) as served:
        yield served


async def _raw(gateway: GatewayUnderTest, data: bytes, *, wait: float = 5) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it (or ``wait`` passes)."""
    url = httpx.URL(gateway.base_url)
    assert url.port is not None
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), wait)
    finally:
        writer.close()


async def test_headers_that_never_finish_are_cut_off_with_a_408(strict: GatewayUnderTest) -> None:
    started = time.monotonic()
    answer = await _raw(strict, b"GET /api/svc/echo/api/call-info HTTP/1.1\r\nHost: gw\r\nX-Slow: ")
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"REQUEST_TIMEOUT"' in answer
    assert time.monotonic() - started < 4
    # A connection that sends nothing at all is closed too, without a word.
    assert await _raw(strict, b"") == b""


async def test_a_body_shorter_than_its_content_length_is_a_408(strict: GatewayUnderTest) -> None:
    started = time.monotonic()
    answer = await _raw(
        strict,
        b"POST /api/svc/echo/api/rooms/r/echo HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{}",
    )
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"REQUEST_TIMEOUT"' in answer
    assert b"connection: close" in answer.lower()
    assert time.monotonic() - started < 4


async def test_past_the_concurrency_limit_the_answer_is_a_503(strict: GatewayUnderTest) -> None:
    pair = await issue_tokens(strict.client)
    params = {"count": "0", "token": pair["accessToken"]}
    async with _HeldStreams(strict, params, 2):
        busy = await strict.client.get(f"{ECHO}/api/call-info")
        assert busy.status_code == 503
        assert _error(busy)["code"] == "OVERLOADED"
        assert busy.headers["retry-after"] == "1"
        # The gateway's own endpoints still answer.
        assert (await strict.client.get("/health")).status_code == 200
    for _ in range(50):
        freed = await strict.client.get(f"{ECHO}/api/call-info")
        if freed.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert freed.status_code == 200


class _HeldStreams:
    """Hold ``count`` SSE streams open for the duration of a ``with``."""

    def __init__(self, gateway: GatewayUnderTest, params: dict[str, str], count: int) -> None:
        self.gateway = gateway
        self.params = params
        self.count = count
        self.clients: list[httpx.AsyncClient] = []
        self.streams: list[httpx.Response] = []
        # Kept: leaving an ``async for`` over a stream's lines closes the stream.
        self.lines: list[AsyncIterator[str]] = []

    async def __aenter__(self) -> None:
        for _ in range(self.count):
            client = httpx.AsyncClient(base_url=self.gateway.base_url, timeout=10)
            self.clients.append(client)
            request = client.build_request("GET", f"{ECHO}/api/ticks", params=self.params)
            reply = await client.send(request, stream=True)
            assert reply.status_code == 200
            self.streams.append(reply)
            lines = reply.aiter_lines()
            self.lines.append(lines)
            while not (await anext(lines)).startswith("event: connected"):
                pass

    async def __aexit__(self, *exc: object) -> None:
        for reply in self.streams:
            await reply.aclose()
        for client in self.clients:
            await client.aclose()
