"""Settings of the board service."""

from __future__ import annotations

from pydantic import Field

from mesh import MeshSettings


class BoardSettings(MeshSettings):
    """The runtime's settings plus the attachment store, caches, presence and the clean-up job."""

    workload: str = "board"
    # The S3-compatible store (the dev stack's server or MinIO; real S3 in production). Presigned URLs
    # are computed locally, so the store need not be reachable for a URL to be issued.
    s3_endpoint: str = Field(default="http://127.0.0.1:19000", validation_alias="S3_ENDPOINT")
    s3_access_key: str = Field(default="wealist", validation_alias="S3_ACCESS_KEY")
    s3_secret_key: str = Field(default="wealist-secret", validation_alias="S3_SECRET_KEY")
    s3_bucket: str = Field(default="wealist", validation_alias="S3_BUCKET")
    s3_region: str = Field(default="us-east-1", validation_alias="S3_REGION")
    # What browsers see when it differs from the endpoint services use (a CDN or public host).
    s3_public_endpoint: str | None = Field(default=None, validation_alias="S3_PUBLIC_ENDPOINT")
    upload_url_seconds: int = Field(default=300, ge=1)
    download_url_seconds: int = Field(default=3600, ge=1)
    # An upload not confirmed by a project, board or comment within this is removed by the clean-up.
    temp_upload_seconds: int = Field(default=3600, ge=1)
    cleanup_interval_seconds: float = Field(default=3600.0, gt=0)
    # Workspace membership answers from user are cached this long; user invalidates them on change.
    membership_cache_seconds: int = Field(default=30, ge=1)
    # A socket's presence entry lives this long unless refreshed (a ping, or the socket's own timer).
    presence_ttl_seconds: int = Field(default=90, ge=5)
    # Events waiting for one slow socket before it is closed (the client reconnects and refetches).
    socket_queue_size: int = Field(default=256, ge=1)
