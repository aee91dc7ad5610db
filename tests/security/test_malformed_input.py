"""Malformed input on every route of the route table: a 4xx in the error envelope, never a 5xx.

The routes come from the gateway's own table (``gateway.routing.build_routes`` over every service in
``proto/``), so a new service's routes are attacked here without this file changing. Each case bends
one thing of an otherwise plausible request (the path, the body, the query, a header, the token) and
is sent to the real gateway process of the test stack, with a fresh user's valid token so the request
reaches the service whenever the gateway lets it through.

A case's request may succeed (a 2xx is no defect: an unknown query parameter is ignored, say); what
must never come back is a 5xx, or an error that is not the contract's ``{"error": {code, message}}``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets
from wealist.mesh.v1 import options_pb2
from websockets.exceptions import ConnectionClosed, InvalidStatus

from devstack import StackInfo
from gateway.mounts import API_PREFIX
from gateway.routing import Route, build_routes
from gateway.template import Literal, Variable, Wildcard
from mesh import UserAuth, all_services
from tests.support import login

ROUTES = build_routes(all_services())
DEEP_JSON = "[" * 5000 + "]" * 5000
# Past the gateway's depth limit, short enough for every query parameter of a route to carry it.
DEEP_QUERY_JSON = "[" * 200 + "]" * 200
# How many requests run at once: enough to finish quickly, few enough for a shared two-core machine.
PARALLEL = 8


@dataclass
class Attempt:
    """One request: the path's variable values, the body, the query, the headers (on top of a token)."""

    value: str = ""  # every path variable's value; "" for a fresh UUID
    body: bytes | None = None
    query: list[tuple[str, str]] = field(default_factory=list)
    raw_query: str = ""  # sent as is, after ``query`` (percent-escapes that are not UTF-8)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    token: bool = True  # send the user's valid token


def _query_fields(route: Route) -> list[str]:
    """The JSON names of the request's top-level fields that the query may set."""
    return [f.json_name for f in route.method.input_type.fields if f.name not in route.bound]


# Each case: (name, applies to the route?, the attempt). Cases that need no body, query or variable
# apply everywhere; the others where the route has that input.
def _cases() -> list[tuple[str, Callable[[Route], bool], Callable[[Route], Attempt]]]:
    always = lambda route: True  # noqa: E731 - a table of small predicates reads better inline
    has_variable = lambda route: bool(route.template.variables)  # noqa: E731
    has_body = lambda route: bool(route.body)  # noqa: E731
    has_query = lambda route: bool(_query_fields(route))  # noqa: E731
    return [
        ("path not UTF-8", has_variable, lambda r: Attempt(value="%c0%ff")),
        ("path too long", has_variable, lambda r: Attempt(value="a" * 4000)),
        ("path with encoded slash and dots", has_variable, lambda r: Attempt(value="..%2F..%2Fetc")),
        ("body nested too deeply", has_body, lambda r: Attempt(body=DEEP_JSON.encode())),
        ("body not JSON", has_body, lambda r: Attempt(body=b"{'single': quotes,}")),
        ("body not UTF-8", has_body, lambda r: Attempt(body=b'{"a": "\xff\xfe"}')),
        ("body a JSON array", has_body, lambda r: Attempt(body=b"[1, 2, 3]")),
        ("body every field an object", has_body, _every_field({"x": [1, {"y": None}]})),
        ("body every field a huge number", has_body, _every_field(10**400)),
        ("body every field a long string", has_body, _every_field("x" * 100_000)),
        ("body every field holding NUL", has_body, _every_field("nul\u0000here")),
        ("path holding NUL", has_variable, lambda r: Attempt(value="a%00b")),
        ("query holding NUL", has_query, lambda r: Attempt(raw_query=_raw_query(r, "a%00b"))),
        (
            "query nested JSON everywhere",
            has_query,
            lambda r: Attempt(query=_every_query(r, DEEP_QUERY_JSON)),
        ),
        ("query huge numbers", has_query, lambda r: Attempt(query=_every_query(r, "9" * 400))),
        ("query not UTF-8", has_query, lambda r: Attempt(raw_query=_raw_query(r, "%C0%FF"))),
        (
            "X-Workspace-Id not ASCII",
            always,
            lambda r: Attempt(headers=[(b"x-workspace-id", b"caf\xc3\xa9")]),
        ),
        ("X-Workspace-Id not a UUID", always, lambda r: Attempt(headers=[(b"x-workspace-id", b"nope")])),
        ("X-Workspace-Id oversized", always, lambda r: Attempt(headers=[(b"x-workspace-id", b"w" * 20_000)])),
        ("traceparent not ASCII", always, lambda r: Attempt(headers=[(b"traceparent", b"00-\xff-01")])),
        ("X-Request-ID unsafe", always, lambda r: Attempt(headers=[(b"x-request-id", b"<\xe9>" * 50)])),
        ("Grpc-Timeout absurd", always, lambda r: Attempt(headers=[(b"grpc-timeout", b"99999999H")])),
        ("Grpc-Timeout malformed", always, lambda r: Attempt(headers=[(b"grpc-timeout", b"-1S")])),
        (
            "token garbage",
            always,
            lambda r: Attempt(token=False, headers=[(b"authorization", b"Bearer a.b.c")]),
        ),
        (
            "token scheme wrong",
            always,
            lambda r: Attempt(token=False, headers=[(b"authorization", b"Basic eA==")]),
        ),
        (
            "token not ASCII",
            always,
            lambda r: Attempt(token=False, headers=[(b"authorization", b"Bearer \xe9")]),
        ),
    ]


def _every_field(value: Any) -> Callable[[Route], Attempt]:
    def attempt(route: Route) -> Attempt:
        message = route.method.input_type
        if route.body == "*":
            document: Any = {f.json_name: value for f in message.fields}
        else:
            document = value
        return Attempt(body=json.dumps(document).encode())

    return attempt


def _every_query(route: Route, value: str) -> list[tuple[str, str]]:
    return [(name, value) for name in _query_fields(route)]


def _raw_query(route: Route, escaped: str) -> str:
    return "&".join(f"{name}={escaped}" for name in _query_fields(route))


def _path(route: Route, value: str) -> str:
    """The route's path under its service's prefix, each variable and wildcard set to ``value``."""
    segments: list[str] = []
    for part in route.template.parts:
        if isinstance(part, Literal):
            segments.append(part.text)
        elif isinstance(part, Variable):
            pattern = "/".join(value if s in ("*", "**") else s for s in part.pattern.split("/"))
            segments.append(pattern)
        elif isinstance(part, Wildcard):
            segments.append(value)
    path = f"{API_PREFIX}{route.workload}/" + "/".join(segments)
    if route.template.verb is not None:
        path += ":" + route.template.verb
    return path


def _attempts() -> Iterator[tuple[str, Route, Attempt]]:
    for route in ROUTES:
        for name, applies, make in _cases():
            if applies(route):
                yield name, route, make(route)


def _check(reply_status: int, content_type: str, body: bytes, where: str) -> None:
    assert reply_status < 500, f"{where}: {reply_status} {body[:300]!r}"
    if reply_status >= 400:
        assert content_type.startswith("application/json"), f"{where}: {content_type} {body[:200]!r}"
        document = json.loads(body)
        assert set(document) == {"error"}, f"{where}: {document}"
        assert {"code", "message"} <= set(document["error"]), f"{where}: {document}"


async def _send(
    client: httpx.AsyncClient, token: str, name: str, route: Route, attempt: Attempt
) -> str | None:
    """Send one attempt; the failure text, or None when the answer is acceptable."""
    path = _path(route, attempt.value or str(uuid.uuid4()))
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
    if attempt.token and token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    headers += attempt.headers
    verb = "GET" if route.stream == options_pb2.STREAM_TRANSPORT_WEBSOCKET else route.verb
    where = f"{name}: {verb} {path[:120]}"
    url = httpx.URL(path, params=attempt.query)
    if attempt.raw_query:
        url = url.copy_with(query=(url.query + b"&" if url.query else b"") + attempt.raw_query.encode())
    request = client.build_request(verb, url, headers=headers, content=attempt.body)
    try:
        # Streams answer with headers first and then stay open: read the status, then let go.
        reply = await client.send(request, stream=True)
        try:
            if route.stream == options_pb2.STREAM_TRANSPORT_SSE and reply.status_code == 200:
                return None
            body = await reply.aread()
        finally:
            await reply.aclose()
        _check(reply.status_code, reply.headers.get("content-type", ""), body, where)
    except AssertionError as failure:
        return str(failure)
    return None


async def test_no_route_answers_malformed_input_with_a_5xx(stack: StackInfo) -> None:
    attempts = list(_attempts())
    assert len(ROUTES) >= 90
    assert len(attempts) > 10 * len(ROUTES)
    gate = asyncio.Semaphore(PARALLEL)
    failures: list[str] = []
    limits = httpx.Limits(max_connections=PARALLEL)
    async with httpx.AsyncClient(
        base_url=stack.services["gateway"].http_base, timeout=20, limits=limits
    ) as client:
        # One user per route: a case that deletes its account or logs it out spoils no other route.
        tokens = {
            id(route): (await login(client, "probe")).token
            for route in ROUTES
            if route.user is not UserAuth.REFUSED
        }

        async def one(name: str, route: Route, attempt: Attempt) -> None:
            async with gate:
                failure = await _send(client, tokens.get(id(route), ""), name, route, attempt)
            if failure is not None:
                failures.append(failure)

        await asyncio.gather(*(one(*each) for each in attempts))
    assert failures == [], "\n".join(sorted(failures))


WEBSOCKET_ROUTES = [route for route in ROUTES if route.stream == options_pb2.STREAM_TRANSPORT_WEBSOCKET]


async def _socket_outcome(url: str, frames: list[str | bytes]) -> tuple[str, int | None]:
    """How a socket ends: ("closed", code), ("refused", HTTP status), or ("open", None) when it is open
    and answering (or quietly ignoring client frames, as a server-streaming socket does)."""
    try:
        async with websockets.connect(url, open_timeout=5) as socket:
            for frame in frames:
                await socket.send(frame)
            await asyncio.wait_for(socket.recv(), 2)
    except ConnectionClosed as closed:
        return "closed", closed.rcvd.code if closed.rcvd is not None else None
    except InvalidStatus as refused:
        return "refused", refused.response.status_code
    except TimeoutError:
        pass
    return "open", None


@pytest.mark.parametrize("route", WEBSOCKET_ROUTES, ids=lambda route: route.label)
async def test_no_socket_fails_on_malformed_input(
    stack: StackInfo, client: httpx.AsyncClient, route: Route
) -> None:
    """A socket with a bad path closes with a 4xxx code; a bad frame is answered, never a crash (1011)."""
    base = stack.services["gateway"].http_base.replace("http", "ws", 1)
    token = (await login(client, "probe")).token
    bad_path = await _socket_outcome(f"{base}{_path(route, '%c0')}?token={token}", [])
    assert bad_path == ("closed", 4400)
    frames: list[str | bytes] = [DEEP_JSON, "{nope", b"\xff"]
    kind, code = await _socket_outcome(f"{base}{_path(route, str(uuid.uuid4()))}?token={token}", frames)
    if kind == "closed":
        assert code is not None
        assert code == 1000 or 4400 <= code < 4500, code  # ended by the service's answer, not a crash
    else:
        assert kind == "open", (kind, code)
