"""Settings of the user service."""

from __future__ import annotations

from mesh import MeshSettings, S3Settings


class UserSettings(MeshSettings, S3Settings):
    """The runtime's settings plus the object store profile pictures are uploaded to."""

    workload: str = "user"
