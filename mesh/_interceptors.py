"""The server chain, applied to every RPC a workload serves.

The chain wraps each method's handler once, when the servicer is registered (``ChainedServer``), rather
than as a grpc.aio ``ServerInterceptor``: grpc.aio runs interceptors through an extra awaited lookup and
builds a new handler on every call, which measured about 90 µs of server CPU per call with an interceptor
that did nothing (``python -m bench.gateway`` shows what a call costs now).

Order, and why:
1. request id and trace context — so everything after, logs included, carries them;
2. metrics — so refused calls are counted too;
3. workload authorization (caller identity against the method's access option) — before the user token, so a
   workload that may not call a method cannot use it to probe which tokens are good;
4. user authentication (JWT from ``authorization`` metadata), as the access option says;
5. request strings — a NUL character (which Postgres cannot store) is INVALID_ARGUMENT naming the field;
6. deadline — a server-side limit for unary calls whose client set none;
7. error mapping — domain errors to a gRPC status with ``google.rpc`` details, anything else to
   INTERNAL without leaking the exception text.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextvars import Token
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from mesh._access import DEBUG_WORKLOAD, MethodAccess, UserAuth
from mesh._context import CallContext, _current
from mesh._errors import Forbidden, InvalidField, MeshError, Unauthenticated
from mesh._identity import spiffe_from_xfcc, workload_from_spiffe
from mesh._metrics import MethodMetrics, ServerMetrics
from mesh._strings import refuse_nul
from mesh._tokens import TokenVerifier, UserClaims
from mesh._tracing import ServerSpan, server_span, tracer

log = logging.getLogger("wealist.mesh")

ERROR_DOMAIN = "wealist.mesh"
HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIXES = ("/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")


def builtin_access(path: str) -> MethodAccess | None:
    """Access for the standard services every server hosts.

    Health answers any workload of the mesh (probes, the gateway's /ready, grpcurl); reflection answers
    only the operator identity, since it lists every method a server has.
    """
    if path.startswith(HEALTH_PREFIX):
        callers: frozenset[str] = frozenset({"*"})
    elif path.startswith(REFLECTION_PREFIXES):
        callers = frozenset({DEBUG_WORKLOAD})
    else:
        return None
    return MethodAccess(
        path=path,
        callers=callers,
        user=UserAuth.REFUSED,
        read_only=True,
        idempotent=True,
        client_streaming=path.startswith(REFLECTION_PREFIXES),
        server_streaming=not path.endswith("/Check"),
    )


def _allows(access: MethodAccess, caller: str | None) -> bool:
    if "*" in access.callers:
        return caller is not None
    return access.allows(caller)


def _metadata(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    pairs = context.invocation_metadata() or ()
    return {key: value for key, value in pairs if isinstance(value, str)}


def bearer_token(value: str | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` value; None when absent.

    The scheme is case-insensitive and the value must be exactly two parts, as the original checked.
    """
    if not value:
        return None
    parts = value.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise Unauthenticated("invalid authorization header format", code="TOKEN_MALFORMED")
    return parts[1]


def rich_status(error: MeshError) -> status_pb2.Status:
    """The ``google.rpc.Status`` of a domain error: ErrorInfo always, BadRequest when a field is named."""
    info = error_details_pb2.ErrorInfo(reason=error.code, domain=ERROR_DOMAIN)
    details = [any_pb2.Any()]
    details[0].Pack(info)
    if isinstance(error, InvalidField):
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=error.field, description=error.reason)
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        details.append(packed)
    return status_pb2.Status(code=error.status.value[0], message=error.message, details=details)


class _CallScope:
    """One served call: sets up the CallContext, checks access, maps errors, records metrics."""

    def __init__(
        self,
        chain: MeshChain,
        method: _Method,
        context: grpc.aio.ServicerContext[Any, Any],
        *,
        accept_at_once: bool = True,
    ):
        self.chain = chain
        self.access = method.access
        self.metrics = method.metrics
        self.context = context
        self.accept_at_once = accept_at_once
        self.started = time.perf_counter()
        self.metrics.start()
        self.request_id = ""
        self.token: Token[CallContext | None] | None = None
        self.code = "OK"
        self.span: ServerSpan | None = None

    async def __aenter__(self) -> CallContext:
        metadata = _metadata(self.context)
        self.request_id = metadata.get("x-request-id") or os.urandom(16).hex()
        caller = self.chain.caller_of(self.context, metadata)
        if tracer() is not None:
            self.span = server_span(
                self.access.path, metadata, **{"rpc.system": "grpc", "wealist.caller": caller or ""}
            )
        try:
            if not _allows(self.access, caller):
                raise Forbidden(
                    f"workload {caller or 'unknown'!r} may not call {self.access.path}",
                    code="CALLER_NOT_ALLOWED",
                )
            user = await self.chain.authenticate(self.access, metadata)
        except MeshError as error:
            # A refused call never enters the ``async with`` body, so __aexit__ will not count it.
            try:
                await self._abort(error)
            finally:
                self._finish()
        remaining = self.context.time_remaining()
        loop = asyncio.get_running_loop()
        call = CallContext(
            method=self.access.path,
            request_id=self.request_id,
            caller=caller,
            user=user,
            deadline=loop.time() + remaining if remaining is not None else None,
            # The calls made while serving are children of this call's span, when there is one.
            traceparent=self.span.traceparent if self.span is not None else metadata.get("traceparent"),
        )
        self.token = _current.set(call)
        # Set now so that it also goes out when the servicer ends the call itself (context.abort).
        self.context.set_trailing_metadata((("x-request-id", self.request_id),))
        if self.access.server_streaming and self.accept_at_once:
            # Tell the caller at once that the stream is accepted (the gateway's SSE "connected" event
            # waits for it), rather than when the first message happens to be sent. A method marked
            # with accepts_stream_itself says so itself, once it really listens (accept_stream).
            await self.context.send_initial_metadata((("x-request-id", self.request_id),))
        return call

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc is None:
                pass
            elif isinstance(exc, MeshError):
                await self._abort(exc)
            elif isinstance(exc, grpc.aio.AioRpcError):
                await self._pass_through(exc)
            elif isinstance(exc, TimeoutError):
                await self._abort_plain(grpc.StatusCode.DEADLINE_EXCEEDED, "the server's deadline passed")
            elif isinstance(exc, asyncio.CancelledError):
                self.code = "CANCELLED"
            elif isinstance(exc, Exception) and not _is_abort(exc):
                log.exception(
                    "unhandled error in %s", self.access.path, extra={"request_id": self.request_id}
                )
                await self._abort_plain(grpc.StatusCode.INTERNAL, "internal error")
            elif _is_abort(exc):
                code = self.context.code()
                self.code = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
        finally:
            if self.token is not None:
                _current.reset(self.token)
                self.token = None
            self._finish()

    def _finish(self) -> None:
        self.metrics.end(self.code, time.perf_counter() - self.started)
        if self.span is not None:
            self.span.set_attribute("rpc.grpc.status_code", self.code)
            self.span.end(error=None if self.code == "OK" else self.code)
            self.span = None

    async def _abort(self, error: MeshError) -> None:
        self.code = error.status.name
        status = rich_status(error)
        await self.context.abort(
            error.status,
            error.message,
            trailing_metadata=(
                ("x-request-id", self.request_id),
                ("grpc-status-details-bin", status.SerializeToString()),
            ),
        )

    async def _pass_through(self, error: grpc.aio.AioRpcError) -> None:
        """A failed call to another service fails this call with the same status and details.

        Its INTERNAL/UNKNOWN stays opaque, and a dependency that timed out is UNAVAILABLE for our caller.
        """
        code = error.code()
        if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
            log.error("a dependency failed in %s: %s", self.access.path, error.details())
            await self._abort_plain(grpc.StatusCode.INTERNAL, "internal error")
        if code is grpc.StatusCode.DEADLINE_EXCEEDED and self.context.time_remaining() not in (None, 0):
            code = grpc.StatusCode.UNAVAILABLE
        self.code = code.name
        trailing: list[tuple[str, str | bytes]] = [("x-request-id", self.request_id)]
        for key, value in error.trailing_metadata() or ():
            if key == "grpc-status-details-bin":
                trailing.append((key, value))
        await self.context.abort(code, error.details() or code.name, trailing_metadata=tuple(trailing))

    async def _abort_plain(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code.name
        status = status_pb2.Status(code=code.value[0], message=message)
        await self.context.abort(
            code,
            message,
            trailing_metadata=(
                ("x-request-id", self.request_id),
                ("grpc-status-details-bin", status.SerializeToString()),
            ),
        )


_ACCEPTS_ITSELF = "__mesh_accepts_stream_itself__"
_Behavior = TypeVar("_Behavior", bound=Callable[..., Any])


def accepts_stream_itself(method: _Behavior) -> _Behavior:
    """Mark a server-streaming method that tells its caller the stream is open itself.

    By default the runtime sends a server stream's initial metadata as soon as the call is accepted, and
    the gateway reports the stream as connected when it arrives. A stream that is only useful once it
    listens (subscribed to its live events, say) is marked with this and calls :func:`accept_stream` when
    it is ready, before its first message; until then the caller keeps waiting.
    """
    setattr(method, _ACCEPTS_ITSELF, True)
    return method


async def accept_stream(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """Tell the caller of a stream marked :func:`accepts_stream_itself` that it is open (once, first)."""
    call = _current.get()
    await context.send_initial_metadata((("x-request-id", call.request_id),) if call else ())


def _is_abort(exc: BaseException) -> bool:
    # grpc.aio raises this private exception out of context.abort(); it must pass through untouched.
    return type(exc).__name__ == "AbortError"


Behavior = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class _Method:
    """What the chain knows of one served method, worked out once at registration."""

    access: MethodAccess
    metrics: MethodMetrics


class MeshChain:
    """The whole chain as one wrapper, so the steps share one CallContext and one timer."""

    def __init__(
        self,
        *,
        table: Mapping[str, MethodAccess],
        metrics: ServerMetrics,
        verifier: TokenVerifier | None,
        istio_mode: bool,
        namespace: str,
        default_deadline: float,
    ) -> None:
        self.table = table
        self.metrics = metrics
        self.verifier = verifier
        self.istio_mode = istio_mode
        self.namespace = namespace
        self.default_deadline = default_deadline

    def caller_of(
        self, context: grpc.aio.ServicerContext[Any, Any], metadata: Mapping[str, str]
    ) -> str | None:
        """The calling workload: from the TLS peer, or from the sidecar's XFCC header in Istio mode."""
        if self.istio_mode:
            header = metadata.get("x-forwarded-client-cert")
            uri = spiffe_from_xfcc(header) if header else None
        else:
            # x-forwarded-client-cert is ignored here on purpose: without a sidecar anyone can send it.
            values = list(context.auth_context().get("peer_spiffe_id") or ())
            uri = values[0].decode() if values else None
        return workload_from_spiffe(uri, self.namespace) if uri else None

    async def authenticate(self, access: MethodAccess, metadata: Mapping[str, str]) -> UserClaims | None:
        """The end user of the call, as the method's access option asks."""
        if access.user is UserAuth.REFUSED:
            return None
        token = bearer_token(metadata.get("authorization"))
        if token is None:
            if access.user is UserAuth.REQUIRED:
                raise Unauthenticated("an end-user token is required", code="TOKEN_MISSING")
            return None
        if self.verifier is None:
            raise Unauthenticated("this server cannot verify user tokens", code="TOKEN_UNVERIFIABLE")
        return await self.verifier.verify(
            token, expected_type="access", closed_account_allowed=access.closed_account_allowed
        )

    def wrap(self, path: str, handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
        """``handler`` of the method ``path`` with the chain around it."""
        access = self.table.get(path) or builtin_access(path)
        if access is None:
            # A method served without an access option: refuse it rather than serve it open.
            access = MethodAccess(path, frozenset(), UserAuth.REFUSED, False, False, False, False)
        method = _Method(
            access, self.metrics.for_method(path, access.client_streaming, access.server_streaming)
        )
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method, deadline=True),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, method, deadline=False),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        assert handler.stream_stream is not None
        return grpc.stream_stream_rpc_method_handler(
            self._streaming(handler.stream_stream, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _unary(self, behavior: Behavior, method: _Method, *, deadline: bool) -> Behavior:
        async def served(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with _CallScope(self, method, context):
                request = _checked(request)
                if deadline and context.time_remaining() is None:
                    async with asyncio.timeout(self.default_deadline):
                        return await behavior(request, context)
                return await behavior(request, context)

        return served

    def _streaming(self, behavior: Behavior, method: _Method) -> Behavior:
        # Streams have no server-side deadline: a notification stream is meant to stay open for hours.
        at_once = not getattr(behavior, _ACCEPTS_ITSELF, False)
        if inspect.isasyncgenfunction(behavior):

            async def streamed(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                async with _CallScope(self, method, context, accept_at_once=at_once):
                    async for response in behavior(_checked(request), context):
                        yield response

            return streamed

        async def written(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            async with _CallScope(self, method, context, accept_at_once=at_once):
                await behavior(_checked(request), context)

        return written


def _checked(request: Any) -> Any:
    """The request, refused when one of its strings holds a NUL (a stream's messages as they come)."""
    if isinstance(request, Message):
        refuse_nul(request)
        return request
    if isinstance(request, AsyncIterator):
        return _checked_stream(request)
    return request


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        refuse_nul(request)
        yield request


class _ChainedGenericHandler(grpc.GenericRpcHandler):
    """A generic handler whose answers come wrapped in the chain, each wrapped once and kept."""

    def __init__(self, inner: grpc.GenericRpcHandler, chain: MeshChain) -> None:
        self._inner = inner
        self._chain = chain
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        path = handler_call_details.method
        wrapped = self._wrapped.get(path)
        if wrapped is None:
            handler = self._inner.service(handler_call_details)
            if handler is None:
                # Unknown methods are not kept: a client could send any number of names.
                return None
            wrapped = self._wrapped[path] = self._chain.wrap(path, handler)
        return wrapped


class ChainedServer(grpc.aio.Server):
    """A grpc.aio server whose every registered handler runs inside the chain.

    The generated ``add_*Servicer_to_server`` functions, health and reflection register through it;
    everything else is the wrapped server's.
    """

    def __init__(self, server: grpc.aio.Server, chain: MeshChain) -> None:
        self._server = server
        self._chain = chain

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(
            [_ChainedGenericHandler(handler, self._chain) for handler in generic_rpc_handlers]
        )

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        self._server.add_registered_method_handlers(
            service_name,
            {
                name: self._chain.wrap(f"/{service_name}/{name}", handler)
                for name, handler in method_handlers.items()
            },
        )

    def add_insecure_port(self, address: str) -> int:
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return self._server.add_secure_port(address, server_credentials)

    async def start(self) -> None:
        await self._server.start()

    async def stop(self, grace: float | None) -> None:
        await self._server.stop(grace)

    async def wait_for_termination(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 (grpc's signature)
        return await self._server.wait_for_termination(timeout)
