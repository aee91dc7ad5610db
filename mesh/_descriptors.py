"""Every proto file of the platform, found by walking the generated ``wealist`` package.

The gateway, the policy compiler, the client retry policy and the access-option test all start here,
so a new proto file is picked up everywhere without being listed anywhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from functools import cache

import wealist
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor
from wealist.mesh.v1 import options_pb2


@cache
def all_files() -> tuple[FileDescriptor, ...]:
    """The file descriptors of every generated ``*_pb2`` module, in a stable order."""
    files = []
    for module in pkgutil.walk_packages(wealist.__path__, prefix="wealist."):
        if module.name.endswith("_pb2"):
            files.append(importlib.import_module(module.name).DESCRIPTOR)
    return tuple(sorted(files, key=lambda f: f.name))


def all_services() -> Iterator[ServiceDescriptor]:
    """Every service declared in proto/."""
    for file in all_files():
        yield from file.services_by_name.values()


def workload_of(service: ServiceDescriptor) -> str:
    """The workload that serves a service, from its ``wealist.mesh.v1.service`` option."""
    return str(service.GetOptions().Extensions[options_pb2.service].workload)


def services_of(workload: str) -> list[ServiceDescriptor]:
    """The services one workload serves."""
    return [service for service in all_services() if workload_of(service) == workload]
