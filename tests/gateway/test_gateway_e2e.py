"""The gateway over HTTP: transcoding, envelopes, errors, edge auth, CORS, limits, SSE and WebSocket."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from devstack import StackInfo
from gateway.app import create_app
from tests.support import authorization, issue_tokens
from tests.support.echo import EchoBackend, GatewayUnderTest

ECHO = "/api/svc/echo"


def _started(echo: EchoBackend, method: str) -> float:
    value = echo.runtime.metrics.registry.get_sample_value(
        "grpc_server_started_total",
        {"grpc_type": "unary", "grpc_service": "meshtest.v1.EchoService", "grpc_method": method},
    )
    return value or 0.0


# --- the auth routes of the contract, through the real gateway process ---------------------------------


@pytest.fixture(scope="module")
def real_gateway(stack: StackInfo) -> str:
    spec = stack.services["gateway"]
    return spec.http_base


async def test_login_refresh_logout_through_the_gateway_process(real_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=real_gateway, timeout=10) as client:
        pair = await issue_tokens(client)
        assert set(pair) == {"accessToken", "refreshToken", "userId"}
        me = await client.get("/api/svc/user/api/users/me", headers=authorization(pair["accessToken"]))
        assert me.status_code == 200
        assert me.json()["userId"] == pair["userId"]
        assert me.json()["isActive"] is True
        renewed = await client.post("/svc/auth/api/auth/refresh", json={"refreshToken": pair["refreshToken"]})
        assert renewed.status_code == 200
        assert renewed.json()["userId"] == pair["userId"]
        reused = await client.post("/svc/auth/api/auth/refresh", json={"refreshToken": pair["refreshToken"]})
        assert reused.status_code == 401
        assert reused.json()["error"]["code"] == "TOKEN_REVOKED"
        access = renewed.json()["accessToken"]
        out = await client.post("/api/svc/auth/api/auth/logout", headers=authorization(access))
        assert out.status_code == 200
        assert out.json()["success"] is True
        after = await client.get("/api/svc/user/api/users/me", headers=authorization(access))
        assert after.status_code == 401
        assert after.json()["error"]["code"] == "TOKEN_REVOKED"


async def test_jwks_and_discovery_through_the_gateway_process(real_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=real_gateway, timeout=10) as client:
        jwks = await client.get("/svc/auth/.well-known/jwks.json")
        assert jwks.status_code == 200
        key = jwks.json()["keys"][0]
        assert {key["kty"], key["alg"], key["use"]} == {"RSA", "RS256", "sig"}
        discovery = await client.get("/api/svc/auth/.well-known/openid-configuration")
        assert discovery.json()["jwks_uri"].endswith("/.well-known/jwks.json")


async def test_google_button_completes_a_dev_login(real_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=real_gateway, timeout=10) as client:
        for prefix in ("/api/oauth2", "/oauth2"):
            reply = await client.get(f"{prefix}/authorization/google")
            assert reply.status_code == 302
            location = httpx.URL(reply.headers["location"])
            assert location.path == "/oauth/callback"
            assert {"accessToken", "refreshToken", "userId"} <= set(location.params)


async def test_missing_token_is_a_401_in_the_error_envelope(real_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=real_gateway, timeout=10) as client:
        reply = await client.get("/api/svc/user/api/users/me")
        assert reply.status_code == 401
        assert reply.json() == {"error": {"code": "TOKEN_MISSING", "message": "an access token is required"}}
        forged = await client.get("/api/svc/user/api/users/me", headers=authorization("a.b.c"))
        assert forged.status_code == 401


# --- transcoding, through the in-process gateway and the echo service ----------------------------------


async def test_body_path_and_envelope(gateway: GatewayUnderTest) -> None:
    reply = await gateway.client.post(
        f"{ECHO}/api/rooms/lobby/echo",
        json={"text": "hi", "count": 2, "tags": ["a"], "unknownField": 1, "room": "ignored-by-path"},
        headers={"X-Request-ID": "rid-1", "X-Workspace-Id": "ws-9"},
    )
    assert reply.status_code == 201
    assert reply.headers["x-request-id"] == "rid-1"
    body = reply.json()
    assert body["requestId"] == "rid-1"
    assert body["data"]["room"] == "lobby"
    assert body["data"]["text"] == "hi"
    assert body["data"]["workspaceId"] == "ws-9"
    # Fields without presence are printed: the web client reads them unconditionally.
    assert body["data"]["loud"] is False
    assert body["data"]["userId"] == ""


async def test_query_parameters_fill_the_rest(gateway: GatewayUnderTest) -> None:
    reply = await gateway.client.get(
        f"{ECHO}/api/rooms/r2/echo",
        params=[
            ("count", "3"),
            ("tags", "x"),
            ("tags", "y"),
            ("at", "2026-11-26T10:00:00Z"),
            ("loud", "true"),
            ("cacheBuster", "1"),
        ],
    )
    assert reply.status_code == 201
    data = reply.json()["data"]
    assert data["count"] == 3
    assert data["tags"] == ["x", "y"]
    assert data["at"] == "2026-11-26T10:00:00Z"
    assert data["loud"] is True


async def test_a_wrong_type_is_a_400_naming_the_field(gateway: GatewayUnderTest) -> None:
    wrong_body = await gateway.client.post(f"{ECHO}/api/rooms/r/echo", json={"count": "many"})
    assert wrong_body.status_code == 400
    assert wrong_body.json()["error"]["field"] == "count"
    wrong_query = await gateway.client.get(f"{ECHO}/api/rooms/r/echo", params={"count": "x"})
    assert wrong_query.status_code == 400
    assert wrong_query.json()["error"]["field"] == "count"
    not_json = await gateway.client.post(
        f"{ECHO}/api/rooms/r/echo", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["error"]["code"] == "MALFORMED_JSON"


async def test_oversized_body_is_a_413(gateway: GatewayUnderTest) -> None:
    big = {"text": "x" * (gateway.settings.max_body_bytes + 1)}
    reply = await gateway.client.post(f"{ECHO}/api/rooms/r/echo", json=big)
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_unknown_routes_and_methods(gateway: GatewayUnderTest) -> None:
    missing = await gateway.client.get(f"{ECHO}/api/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    wrong_method = await gateway.client.delete(f"{ECHO}/api/rooms/r/echo")
    assert wrong_method.status_code == 405
    unknown_service = await gateway.client.get("/api/svc/nope/api/x")
    assert unknown_service.status_code == 404


STATUS_TABLE = {
    1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400, 12: 501,
    13: 500, 14: 503, 15: 500, 16: 401,
}  # fmt: skip


async def test_every_grpc_status_maps_to_its_http_status(gateway: GatewayUnderTest) -> None:
    for code, status in STATUS_TABLE.items():
        reply = await gateway.client.get(f"{ECHO}/api/fail/{code}")
        assert reply.status_code == status, code
        error = reply.json()["error"]
        assert error["message"], code
        if code not in (1, 2, 13, 15):  # CANCELLED carries no text; INTERNAL and friends are made opaque
            assert error["message"] == "failing on purpose", code


async def test_edge_auth_refuses_before_any_backend_call(
    gateway: GatewayUnderTest, echo_backend: EchoBackend
) -> None:
    before = _started(echo_backend, "WhoAmI")
    for headers in ({}, authorization("not-a-token"), {"Authorization": "Basic abc"}):
        reply = await gateway.client.get(f"{ECHO}/api/whoami", headers=headers)
        assert reply.status_code == 401
    assert _started(echo_backend, "WhoAmI") == before
    pair = await issue_tokens(gateway.client)
    me = await gateway.client.get(f"{ECHO}/api/whoami", headers=authorization(pair["accessToken"]))
    assert me.status_code == 200
    assert me.json() == {"userId": pair["userId"]}
    assert _started(echo_backend, "WhoAmI") == before + 1


async def test_a_stopped_backend_is_a_503(
    stack: StackInfo, echo_backend: EchoBackend, gateway: GatewayUnderTest
) -> None:
    nowhere = "127.0.0.1:9"  # the discard port: nothing listens there
    service = echo_backend.pb2.DESCRIPTOR.services_by_name["EchoService"]
    app = create_app(gateway.settings, services=[service], addresses={"echo": nowhere})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        reply = await client.get(f"{ECHO}/api/rooms/r/echo", headers={"Grpc-Timeout": "3S"})
    assert reply.status_code == 503
    assert reply.json()["error"]["code"] == "UNAVAILABLE"
    await app.state.gateway.close()


async def test_cors_preflight(gateway: GatewayUnderTest) -> None:
    allowed = await gateway.client.options(
        f"{ECHO}/api/rooms/r/echo",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    refused = await gateway.client.options(
        f"{ECHO}/api/rooms/r/echo",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in refused.headers


async def test_sse_delivers_named_events_with_pings(gateway: GatewayUnderTest) -> None:
    pair = await issue_tokens(gateway.client)
    url = f"{ECHO}/api/ticks"
    params = {"count": "3", "intervalMs": "300", "token": pair["accessToken"]}
    events: list[tuple[str, str]] = []
    pings = 0
    async with gateway.client.stream("GET", url, params=params) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        name = ""
        async for line in reply.aiter_lines():
            if line.startswith(":ping"):
                pings += 1
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, line[6:]))
    assert [name for name, _ in events] == ["connected", "tick", "tick", "tick"]
    assert [json.loads(data)["number"] for _, data in events[1:]] == [0, 1, 2]
    assert json.loads(events[1][1])["userId"] == pair["userId"]
    assert pings >= 1


async def test_sse_without_token_is_refused(gateway: GatewayUnderTest) -> None:
    reply = await gateway.client.get(f"{ECHO}/api/ticks", params={"count": "1"})
    assert reply.status_code == 401


async def _logout(client: httpx.AsyncClient, access_token: str) -> None:
    out = await client.post("/api/svc/auth/api/auth/logout", headers=authorization(access_token))
    assert out.status_code == 200, out.text


async def test_an_open_sse_stream_ends_when_its_token_is_logged_out(gateway: GatewayUnderTest) -> None:
    pair = await issue_tokens(gateway.client)
    params = {"count": "0", "token": pair["accessToken"]}  # a stream that never ends by itself
    events: list[tuple[str, str]] = []

    async def read() -> None:
        async with gateway.client.stream("GET", f"{ECHO}/api/ticks", params=params) as reply:
            name = ""
            async for line in reply.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, line[6:]))
                    if name == "connected":
                        # Rechecked every 0.2 s here: still open after several checks, then logged out.
                        await asyncio.sleep(1.0)
                        await _logout(gateway.client, pair["accessToken"])

    await asyncio.wait_for(read(), 10)
    assert [name for name, _ in events] == ["connected", "error"]
    assert json.loads(events[1][1])["error"]["code"] == "TOKEN_REVOKED"


async def test_an_open_websocket_is_closed_when_its_token_is_logged_out(gateway: GatewayUnderTest) -> None:
    pair = await issue_tokens(gateway.client)
    url = gateway.base_url.replace("http", "ws") + f"{ECHO}/ws/rooms/blue?token={pair['accessToken']}"
    async with websockets.connect(url) as socket:
        assert json.loads(await socket.recv())["type"] == "joined"
        await asyncio.sleep(1.0)  # several rechecks pass while the token is good
        await socket.send(json.dumps({"type": "ping"}))
        assert json.loads(await socket.recv())["type"] == "pong"
        await _logout(gateway.client, pair["accessToken"])
        told = json.loads(await asyncio.wait_for(socket.recv(), 5))
        assert told["error"]["code"] == "TOKEN_REVOKED"
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_a_dropped_sse_client_ends_the_grpc_stream(
    gateway: GatewayUnderTest, echo_backend: EchoBackend
) -> None:
    pair = await issue_tokens(gateway.client)
    labels = {
        "grpc_type": "server_stream",
        "grpc_service": "meshtest.v1.EchoService",
        "grpc_method": "Ticks",
        "grpc_code": "CANCELLED",
    }
    before = (
        echo_backend.runtime.metrics.registry.get_sample_value("grpc_server_handled_total", labels) or 0.0
    )
    async with gateway.client.stream(
        "GET", f"{ECHO}/api/ticks", params={"count": "0", "token": pair["accessToken"]}
    ) as reply:
        async for line in reply.aiter_lines():
            if line.startswith("event: connected"):
                break
    for _ in range(50):
        after = (
            echo_backend.runtime.metrics.registry.get_sample_value("grpc_server_handled_total", labels) or 0.0
        )
        if after > before:
            break
        await asyncio.sleep(0.1)
    assert after == before + 1


async def test_a_service_picks_another_2xx_with_x_http_code(gateway: GatewayUnderTest) -> None:
    url = f"{ECHO}/api/rooms/r/echo"
    plain = await gateway.client.post(url, json={"text": "hi"}, headers={"X-Request-ID": "rid-207"})
    partial = await gateway.client.post(
        url, json={"text": "hi", "httpCode": "207"}, headers={"X-Request-ID": "rid-207"}
    )
    assert plain.status_code == 201
    assert partial.status_code == 207
    # Only the status changes: the same envelope, the same request id.
    assert partial.headers["x-request-id"] == "rid-207"
    assert partial.json()["requestId"] == "rid-207"
    assert partial.json()["data"] == plain.json()["data"]
    trailing = await gateway.client.post(url, json={"trailingHttpCode": "207"})
    assert trailing.status_code == 207
    assert trailing.json()["data"]["room"] == "r"
    both = await gateway.client.post(url, json={"httpCode": "202", "trailingHttpCode": "207"})
    assert both.status_code == 207  # the trailing metadata's word is the last
    lower = await gateway.client.get(url, params={"httpCode": "200"})
    assert lower.status_code == 200
    assert lower.json()["data"]["room"] == "r"
    empty = await gateway.client.post(url, json={"trailingHttpCode": "204"})
    assert empty.status_code == 204
    assert empty.content == b""


@pytest.mark.parametrize("bogus", ["500", "302", "199", "300", "abc", "2070", "0207", "20x"])
async def test_an_x_http_code_that_is_no_2xx_is_ignored(gateway: GatewayUnderTest, bogus: str) -> None:
    for field in ("httpCode", "trailingHttpCode"):
        reply = await gateway.client.post(f"{ECHO}/api/rooms/r/echo", json={"text": "t", field: bogus})
        assert reply.status_code == 201, (field, bogus)
        assert reply.json()["data"]["text"] == "t"


async def test_websocket_opens_with_the_path_and_query_before_any_client_frame(
    gateway: GatewayUnderTest,
) -> None:
    pair = await issue_tokens(gateway.client)
    url = (
        gateway.base_url.replace("http", "ws")
        + f"{ECHO}/ws/rooms/green?text=hello&token={pair['accessToken']}"
    )
    async with websockets.connect(url) as socket:
        # Nothing sent yet: the service got the opening message (path's room, query's text) and answered.
        joined = json.loads(await asyncio.wait_for(socket.recv(), 5))
        assert joined == {"room": "green", "type": "joined", "text": "hello", "userId": pair["userId"]}
        await socket.send(json.dumps({"type": "say"}))
        said = json.loads(await asyncio.wait_for(socket.recv(), 5))
        # Client frames come after the opening one, with the path and query fields too.
        assert said == {"room": "green", "type": "echo", "text": "hello", "userId": pair["userId"]}


async def test_websocket_round_trip(gateway: GatewayUnderTest) -> None:
    pair = await issue_tokens(gateway.client)
    url = gateway.base_url.replace("http", "ws") + f"{ECHO}/ws/rooms/blue?token={pair['accessToken']}"
    async with websockets.connect(url) as socket:
        joined = json.loads(await socket.recv())
        assert joined == {"room": "blue", "type": "joined", "text": "", "userId": pair["userId"]}
        await socket.send(json.dumps({"type": "ping"}))
        pong = json.loads(await socket.recv())
        assert pong == {"room": "blue", "type": "pong", "text": "", "userId": pair["userId"]}
        await socket.send(json.dumps({"type": "say", "text": "hello"}))
        said = json.loads(await socket.recv())
        assert said["text"] == "hello"
        assert said["type"] == "echo"


async def test_a_plain_request_to_a_websocket_route_is_told_to_upgrade(gateway: GatewayUnderTest) -> None:
    pair = await issue_tokens(gateway.client)
    for verb in ("GET", "POST"):
        reply = await gateway.client.request(
            verb, f"{ECHO}/ws/rooms/blue", headers=authorization(pair["accessToken"])
        )
        if verb == "POST":  # the route is GET only: another verb is a 405 as anywhere else
            assert reply.status_code == 405, reply.text
            continue
        assert reply.status_code == 426, reply.text
        assert reply.headers["upgrade"] == "websocket"
        assert reply.json()["error"]["code"] == "UPGRADE_REQUIRED"
    # Without a token it is the same answer: nothing about the route depends on who asks.
    anonymous = await gateway.client.get(f"{ECHO}/ws/rooms/blue")
    assert anonymous.status_code == 426, anonymous.text


async def test_websocket_without_token_is_closed(gateway: GatewayUnderTest) -> None:
    url = gateway.base_url.replace("http", "ws") + f"{ECHO}/ws/rooms/blue"
    with pytest.raises(ConnectionClosed) as closed:
        async with websockets.connect(url) as socket:
            await socket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_own_endpoints(gateway: GatewayUnderTest) -> None:
    assert (await gateway.client.get("/health")).status_code == 200
    ready = await gateway.client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["backends"]["auth"] == "SERVING"
    spec = await gateway.client.get("/openapi.json")
    assert spec.status_code == 200
    assert spec.json()["openapi"].startswith("3.1")
    docs = await gateway.client.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text
    await gateway.client.get(f"{ECHO}/api/rooms/m/echo")
    metrics = await gateway.client.get("/metrics")
    assert 'route="/echo/api/rooms/{room}/echo"' in metrics.text
