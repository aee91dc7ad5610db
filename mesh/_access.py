"""The access table: every method's ``wealist.mesh.v1.access`` option, read from the descriptors.

It is the one declaration behind the in-process authorization, the Istio policies and the gateway's
edge authentication. A method without the option is a build error (``methods_without_access``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum

from google.protobuf.descriptor import FileDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.descriptor_pb2 import MethodOptions
from wealist.mesh.v1 import options_pb2

# The operator identity: reflection, health, and every method without side effects.
DEBUG_WORKLOAD = "debug"


class UserAuth(Enum):
    """Whether an end-user token takes part in a call (mirrors ``wealist.mesh.v1.UserAuth``)."""

    REQUIRED = options_pb2.USER_AUTH_REQUIRED
    OPTIONAL = options_pb2.USER_AUTH_OPTIONAL
    REFUSED = options_pb2.USER_AUTH_REFUSED


@dataclass(frozen=True, slots=True)
class MethodAccess:
    """Who may call one method, resolved from its options."""

    path: str  # "/wealist.auth.v1.AuthService/RefreshToken"
    callers: frozenset[str]
    user: UserAuth
    read_only: bool
    idempotent: bool
    client_streaming: bool
    server_streaming: bool
    # Serves the user of a deleted account too (restoring it); every other method refuses such a user.
    closed_account_allowed: bool = False

    def allows(self, workload: str | None) -> bool:
        """Whether a caller with this workload identity may call the method."""
        if workload is None:
            return False
        return workload in self.callers or (self.read_only and workload == DEBUG_WORKLOAD)


class MissingAccessOption(LookupError):
    """A method was declared without its access option."""


def method_path(method: MethodDescriptor) -> str:
    """The gRPC path of a method, as HTTP/2 and Istio's ``to.operation.paths`` see it."""
    return f"/{method.containing_service.full_name}/{method.name}"


def iter_methods(files: Iterable[FileDescriptor]) -> Iterator[MethodDescriptor]:
    """Every method of every service of the given files."""
    for file in files:
        for service in file.services_by_name.values():
            yield from service.methods_by_name.values()


def methods_without_access(files: Iterable[FileDescriptor]) -> list[str]:
    """Paths of methods that carry no access option, or one naming no caller or no user rule."""
    missing = []
    for method in iter_methods(files):
        options = method.GetOptions()
        if not options.HasExtension(options_pb2.access):
            missing.append(method_path(method))
            continue
        access = options.Extensions[options_pb2.access]
        if not access.callers or access.user == options_pb2.USER_AUTH_UNSPECIFIED:
            missing.append(method_path(method))
    return missing


def method_access(method: MethodDescriptor) -> MethodAccess:
    """Resolve one method's access; raises MissingAccessOption when it has none."""
    options = method.GetOptions()
    if not options.HasExtension(options_pb2.access):
        raise MissingAccessOption(method_path(method))
    access = options.Extensions[options_pb2.access]
    if access.user == options_pb2.USER_AUTH_UNSPECIFIED or not access.callers:
        raise MissingAccessOption(method_path(method))
    level = options.idempotency_level
    return MethodAccess(
        path=method_path(method),
        callers=frozenset(access.callers),
        user=UserAuth(access.user),
        read_only=level == MethodOptions.NO_SIDE_EFFECTS,
        idempotent=level in (MethodOptions.NO_SIDE_EFFECTS, MethodOptions.IDEMPOTENT),
        client_streaming=method.client_streaming,
        server_streaming=method.server_streaming,
        closed_account_allowed=access.closed_account_allowed,
    )


def access_table(services: Iterable[ServiceDescriptor]) -> Mapping[str, MethodAccess]:
    """Method path → access for the services a server hosts."""
    table: dict[str, MethodAccess] = {}
    for service in services:
        for method in service.methods_by_name.values():
            access = method_access(method)
            table[access.path] = access
    return table
