"""The S3 bucket attachments live in: presigned URLs and deletes, through the ``minio`` SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from urllib.parse import urlsplit

from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from urllib3.exceptions import MaxRetryError

from mesh import Unavailable
from services.board.settings import BoardSettings

# What S3 (and MinIO, moto) answer for an object that is not there (HEAD has no body: moto's
# and MinIO's SDK report it as ``NoSuchKey``; some servers as ``ResourceNotFound``).
MISSING = frozenset({"NoSuchKey", "NoSuchObject", "ResourceNotFound"})


class ObjectStore:
    """Presigned PUT/GET URLs (computed locally) and deletes (blocking SDK calls, run in a thread)."""

    def __init__(self, settings: BoardSettings) -> None:
        self.bucket = settings.s3_bucket
        self.client = self._client(settings.s3_endpoint, settings)
        # URLs are signed for the host browsers use, which may differ from the one services use.
        self.public = self._client(settings.s3_public_endpoint or settings.s3_endpoint, settings)
        self.upload_lifetime = timedelta(seconds=settings.upload_url_seconds)
        self.download_lifetime = timedelta(seconds=settings.download_url_seconds)

    @staticmethod
    def _client(endpoint: str, settings: BoardSettings) -> Minio:
        parts = urlsplit(endpoint)
        # The region is given so that presigning stays local (no bucket-location request).
        return Minio(
            parts.netloc,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=parts.scheme == "https",
            region=settings.s3_region,
        )

    def upload_url(self, key: str) -> str:
        """A presigned PUT URL for ``key``, valid for the upload lifetime (5 minutes by default)."""
        return self.public.presigned_put_object(self.bucket, key, expires=self.upload_lifetime)

    def download_url(self, key: str) -> str:
        """A presigned GET URL for ``key``, valid for the download lifetime (1 hour by default)."""
        return self.public.presigned_get_object(self.bucket, key, expires=self.download_lifetime)

    async def delete(self, keys: Sequence[str]) -> list[str]:
        """Delete objects (a missing one counts as deleted); returns the keys that could not be deleted."""
        if not keys:
            return []

        def remove() -> list[str]:
            errors = self.client.remove_objects(self.bucket, [DeleteObject(key) for key in keys])
            return [error.name for error in errors if error.name]

        return await asyncio.to_thread(remove)

    async def exists(self, key: str) -> bool:
        """Whether an object is in the bucket (used to check that an upload really happened)."""

        def stat() -> bool:
            try:
                self.client.stat_object(self.bucket, key)
            except S3Error as error:
                if error.code in MISSING:
                    return False
                raise Unavailable(f"the object store answered {error.code}") from None
            except (OSError, MaxRetryError) as error:
                raise Unavailable(f"the object store cannot be reached: {type(error).__name__}") from None
            return True

        return await asyncio.to_thread(stat)
