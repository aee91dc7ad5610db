"""Client channels to other workloads: mTLS, one long-lived channel each, deadlines propagated.

The client interceptor carries the served call's context into the calls it makes: the request id and
trace context, the end user's token, and the remaining deadline (a call never gets more time than the
call that caused it has left).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from mesh._access import method_access
from mesh._context import current_call
from mesh._descriptors import services_of
from mesh._identity import TlsMaterial
from mesh._settings import MeshSettings

# Retries for methods that are safe to repeat; UNAVAILABLE is the only failure known not to have run.
RETRY_POLICY = {
    "maxAttempts": 3,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def service_config(workload: str) -> str:
    """The gRPC service config of a channel to ``workload``: retries for its idempotent methods."""
    names = [
        {"service": service.full_name, "method": method.name}
        for service in services_of(workload)
        for method in service.methods_by_name.values()
        if method_access(method).idempotent and not method.client_streaming
    ]
    configs = [{"name": names, "retryPolicy": RETRY_POLICY}] if names else []
    return json.dumps({"methodConfig": configs})


def _propagated(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    call = current_call()
    if call is None:
        return details
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    keys = {key for key, _ in metadata}
    if "x-request-id" not in keys:
        metadata.add("x-request-id", call.request_id)
    if call.traceparent and "traceparent" not in keys:
        metadata.add("traceparent", call.traceparent)
    if call.user is not None and "authorization" not in keys:
        metadata.add("authorization", f"Bearer {call.user.token}")
    timeout = details.timeout
    if call.deadline is not None:
        remaining = max(call.deadline - asyncio.get_running_loop().time(), 0.0)
        timeout = remaining if timeout is None else min(timeout, remaining)
    return grpc.aio.ClientCallDetails(
        method=details.method,
        timeout=timeout,
        metadata=metadata,
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )


class _Propagate(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(_propagated(details), request)

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(_propagated(details), request)

    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(_propagated(details), request_iterator)

    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(_propagated(details), request_iterator)


def open_channel(
    target: str,
    *,
    workload: str,
    tls: TlsMaterial | None,
    extra_options: tuple[tuple[str, Any], ...] = (),
    propagate: bool = True,
) -> grpc.aio.Channel:
    """A channel to ``workload`` at ``target``; mTLS when ``tls`` is given, plaintext to a sidecar if not.

    With mTLS the server must present a certificate naming ``workload`` (the TLS name is overridden to
    it), so a channel to the user service cannot be answered by another workload's certificate.
    ``propagate=False`` leaves out the interceptor that carries a served call's context along: the
    gateway serves no gRPC call, and saves the per-call cost.
    """
    options: list[tuple[str, Any]] = [
        # Under Istio (no TLS here: the sidecar does it) the VirtualServices retry; retrying here as
        # well would multiply the attempts.
        ("grpc.service_config", service_config(workload) if tls is not None else json.dumps({})),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        *extra_options,
    ]
    interceptors = [_Propagate()] if propagate else []
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert
    )
    options.append(("grpc.ssl_target_name_override", workload))
    return grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)


class Channels:
    """The long-lived channels of one process, opened on first use and closed at shutdown."""

    def __init__(
        self,
        settings: MeshSettings,
        tls: TlsMaterial | None,
        *,
        addresses: Mapping[str, str] | None = None,
        propagate: bool = True,
    ) -> None:
        self._settings = settings
        self._tls = tls
        self._addresses = dict(addresses or {})
        self._propagate = propagate
        self._open: dict[str, grpc.aio.Channel] = {}

    def to(self, workload: str) -> grpc.aio.Channel:
        """The channel to another workload, by name."""
        channel = self._open.get(workload)
        if channel is None:
            target = self._addresses.get(workload) or self._settings.address_of(workload)
            channel = open_channel(target, workload=workload, tls=self._tls, propagate=self._propagate)
            self._open[workload] = channel
        return channel

    async def close(self) -> None:
        """Close every channel (at shutdown)."""
        channels, self._open = list(self._open.values()), {}
        for channel in channels:
            await channel.close()
