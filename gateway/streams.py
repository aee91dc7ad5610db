"""Streaming RPCs over HTTP: server streams as SSE or WebSocket, bidirectional streams as WebSocket.

Browsers cannot set headers on EventSource or WebSocket, so these routes also take the access token
from ``?token=``, as the web client sends it, when no ``Authorization`` header is sent (a header that
is sent must be a well-formed ``Bearer``: see ``gateway.core.presented_token``). When the client goes
away the gRPC call is cancelled, so the service releases what it held for the stream.

Bidirectional sockets: the first request message of a socket is the opening one, built from the path
and query (no body). The gateway sends it as soon as the socket is accepted, so the service knows what
the socket is for (``/ws/project/{project_id}``) and can push before the client says anything; each
client frame is then one more request message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.core import Backend, Gateway, presented_token
from gateway.errors import HttpError, Refused, from_mesh_error, from_rpc_error, ws_close_code
from gateway.jsonprint import encode
from gateway.metadata import forwarded_headers, outgoing_metadata, request_id_of
from gateway.routing import Route
from gateway.transcode import build_request, merge_json, parse_json_object, response_payload
from mesh import MeshError, Unauthenticated, UserClaims


def _query_without_token(query: Any) -> list[tuple[str, str]]:
    return [(key, value) for key, value in query.multi_items() if key != "token"]


def _token(request: Request | WebSocket) -> str | None:
    return presented_token(request.headers.get("authorization"), request.query_params.get("token"))


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + encode(data) + b"\n\n"


async def sse(
    gateway: Gateway,
    backend: Backend,
    values: Mapping[str, str],
    request: Request,
    *,
    request_id: str,
    forwarded: tuple[tuple[str, str], ...],
) -> Response:
    """A server-streaming RPC as server-sent events: ``connected``, then one event per message.

    ``forwarded`` are the checked headers the call carries as metadata (gateway/metadata.py).
    """
    route = backend.route
    # A refused token or bad query raises to the REST handler, which answers in the error envelope.
    user = await gateway.user_token(route, _token(request))
    token = user.token if user else None
    message = build_request(route, values, _query_without_token(request.query_params), b"")
    metadata = outgoing_metadata(forwarded, request_id=request_id, token=token)
    call = backend.call(message, metadata=metadata)
    try:
        await call.initial_metadata()
    except grpc.aio.AioRpcError as error:
        raise Refused(from_rpc_error(error)) from None
    ping = gateway.settings.sse_ping_seconds

    async def events() -> AsyncIterator[bytes]:
        yield _event("connected", {"requestId": request_id})
        pending: asyncio.Future[Any] | None = None
        lapsed = asyncio.ensure_future(_lapsed(gateway, route, user))
        try:
            while True:
                pending = pending or asyncio.ensure_future(call.read())
                done, _ = await asyncio.wait(
                    {pending, lapsed}, timeout=ping, return_when=asyncio.FIRST_COMPLETED
                )
                if lapsed in done:
                    yield _event("error", lapsed.result().body())
                    return
                if not done:
                    yield b":ping\n\n"
                    continue
                finished, pending = pending, None
                try:
                    reply = finished.result()
                except grpc.aio.AioRpcError as error:
                    yield _event("error", from_rpc_error(error).body())
                    return
                if reply is grpc.aio.EOF:
                    return
                yield _event(route.sse_event, response_payload(route, reply))
        finally:
            if pending is not None:
                pending.cancel()
            lapsed.cancel()
            call.cancel()

    headers = {"x-request-id": request_id, "cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


async def websocket(gateway: Gateway, backend: Backend, values: Mapping[str, str], socket: WebSocket) -> None:
    """A streaming RPC over a WebSocket: JSON text frames both ways.

    Server streaming: the path and query make the one request message. Bidirectional: they make the
    opening request message, sent on accept, and each client frame is one request message after it.
    """
    route = backend.route
    request_id = request_id_of(socket.headers.get("x-request-id"))
    query = _query_without_token(socket.query_params)
    try:
        forwarded = forwarded_headers(socket.headers, limit=gateway.settings.max_forwarded_header_bytes)
        user = await gateway.user_token(route, _token(socket))
        opening = build_request(route, values, query, b"")
    except (MeshError, Refused) as error:
        # Accepted, then closed with 4000 + the HTTP status: a browser sees the code, where a refused
        # handshake would only show 1006.
        failure = error.error if isinstance(error, Refused) else from_mesh_error(error)
        await socket.accept()
        await socket.close(code=ws_close_code(failure))
        return
    await socket.accept()
    metadata = outgoing_metadata(forwarded, request_id=request_id, token=user.token if user else None)
    if route.client_streaming:
        # The first request message of a socket is the opening one, built from the path and query, sent
        # at once; then one per client frame (with the path's and query's fields too).
        outgoing: asyncio.Queue[Message | None] = asyncio.Queue()
        outgoing.put_nowait(opening)
        call = backend.call(_drain(outgoing), metadata=metadata)
        reader = asyncio.create_task(_read_frames(socket, route, values, query, outgoing))
    else:
        call = backend.call(opening, metadata=metadata)
        reader = asyncio.create_task(_ignore_frames(socket))
    watcher = asyncio.create_task(_end_when_lapsed(gateway, route, user, socket, call))
    try:
        async for reply in call:
            await socket.send_text(encode(response_payload(route, reply)).decode())
        await socket.close(code=1000)
    except grpc.aio.AioRpcError as error:
        if error.code() is not grpc.StatusCode.CANCELLED:
            failure = from_rpc_error(error)
            with contextlib.suppress(Exception):
                await socket.send_text(json.dumps(failure.body()))
                await socket.close(code=ws_close_code(failure))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        call.cancel()
        reader.cancel()
        watcher.cancel()


async def _lapsed(gateway: Gateway, route: Route, user: UserClaims | None) -> HttpError:
    """Returns, with the 401 to tell the client, once the stream's token expires, is revoked or its
    account deleted; checked every ``stream_recheck_seconds``. Never returns for a stream without a user.
    """
    if user is None:
        await asyncio.Event().wait()
    assert user is not None
    while True:
        await asyncio.sleep(gateway.settings.stream_recheck_seconds)
        # The same leeway as the verifier's: a token it would still accept keeps its stream.
        if user.expires_at <= time.time() - gateway.verifier.leeway_seconds:
            return HttpError(401, "TOKEN_EXPIRED", "token has expired")
        try:
            await gateway.verifier.check_standing(user, closed_account_allowed=route.closed_account_allowed)
        except Unauthenticated as error:
            return HttpError(401, error.code, error.message)
        except MeshError:
            continue  # Redis unreachable for a moment: the stream was admitted, keep it and look again


async def _end_when_lapsed(
    gateway: Gateway, route: Route, user: UserClaims | None, socket: WebSocket, call: Any
) -> None:
    """Close the socket (4401) and end its call once its token lapses (see ``_lapsed``)."""
    failure = await _lapsed(gateway, route, user)
    with contextlib.suppress(Exception):
        await socket.send_text(encode(failure.body()).decode())
        await socket.close(code=ws_close_code(failure))
    call.cancel()


async def _drain(queue: asyncio.Queue[Message | None]) -> AsyncIterator[Message]:
    while (item := await queue.get()) is not None:
        yield item


async def _read_frames(
    socket: WebSocket,
    route: Route,
    values: Mapping[str, str],
    query: list[tuple[str, str]],
    outgoing: asyncio.Queue[Message | None],
) -> None:
    """Client frames → the request messages after the opening one (with the path and query fields).

    A frame that is not a JSON object of the message (not UTF-8, not JSON, nested too deeply, a wrong
    type) is answered with an error frame and skipped; the socket stays open.
    """
    try:
        while True:
            frame = await socket.receive()
            if frame["type"] == "websocket.disconnect":
                break
            message = build_request(route, values, query, b"")
            try:
                merge_json(message, parse_json_object(_frame_text(frame), field="frame"))
            except MeshError as error:
                failure = from_mesh_error(error)
                bad = HttpError(failure.status, "BAD_FRAME", failure.message, failure.field)
                await socket.send_text(encode(bad.body()).decode())
                continue
            await outgoing.put(message)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        await outgoing.put(None)


def _frame_text(frame: Mapping[str, Any]) -> str | bytes:
    """A frame's payload: text frames as sent, binary ones as bytes (JSON parses UTF-8 bytes too)."""
    text = frame.get("text")
    if text is not None:
        return str(text)
    return bytes(frame.get("bytes") or b"")


async def _ignore_frames(socket: WebSocket) -> None:
    """A server-streaming socket: read (and drop) client frames so close frames are noticed."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while (await socket.receive())["type"] != "websocket.disconnect":
            pass
