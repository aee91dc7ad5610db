"""What every test of the running platform shares: its environment and clients of its services."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import grpc

from devstack import StackInfo
from mesh import TlsMaterial, load_tls, open_channel

# The environment of the services under test: both dev login paths on, like `nox -s up`.
STACK_ENV = {
    "AUTH_TEST_LOGIN_ENABLED": "true",
    "AUTH_DEV_OAUTH_ENABLED": "true",
    "WEALIST_ENVIRONMENT": "test",
}


def append_line(log: TextIO, line: str) -> None:
    """Write one line of a service's output to a log file (one newline, whatever the line ends with)."""
    log.write(line.rstrip("\n") + "\n")


class Mesh:
    """Clients of the running services, each channel dialled as a chosen workload identity."""

    def __init__(self, info: StackInfo) -> None:
        self.info = info
        self._channels: dict[tuple[str, str], grpc.aio.Channel] = {}

    @property
    def state_dir(self) -> Path:
        return self.info.state_dir

    def tls(self, workload: str) -> TlsMaterial:
        """The dev PKI's certificate of a workload."""
        return load_tls(self.info.state_dir, workload)

    def address(self, service: str) -> str:
        return self.info.services[service].addr

    def channel(self, service: str, *, as_workload: str = "gateway") -> grpc.aio.Channel:
        """A cached mTLS channel to ``service`` presenting ``as_workload``'s certificate."""
        key = (service, as_workload)
        if key not in self._channels:
            self._channels[key] = open_channel(
                self.address(service), workload=service, tls=self.tls(as_workload)
            )
        return self._channels[key]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
