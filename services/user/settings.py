"""Settings of the user service."""

from __future__ import annotations

from mesh import MeshSettings


class UserSettings(MeshSettings):
    """The runtime's settings; the user service adds none of its own yet."""

    workload: str = "user"
