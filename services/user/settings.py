"""Settings of the user service."""

from __future__ import annotations

from pydantic import Field

from mesh import MeshSettings


class UserSettings(MeshSettings):
    """The runtime's settings plus the object store profile pictures are uploaded to."""

    workload: str = "user"
    # The S3-compatible store (the dev stack's moto or MinIO; real S3 in production). The presigned URL
    # is computed locally, so the store need not be reachable for a URL to be issued.
    s3_endpoint: str = Field(default="http://127.0.0.1:19000", validation_alias="S3_ENDPOINT")
    s3_access_key: str = Field(default="wealist", validation_alias="S3_ACCESS_KEY")
    s3_secret_key: str = Field(default="wealist-secret", validation_alias="S3_SECRET_KEY")
    s3_bucket: str = Field(default="wealist", validation_alias="S3_BUCKET")
    s3_region: str = Field(default="us-east-1", validation_alias="S3_REGION")
    # What browsers see when it differs from the endpoint services use (a CDN or public host).
    s3_public_endpoint: str | None = Field(default=None, validation_alias="S3_PUBLIC_ENDPOINT")
    presign_seconds: int = 300
