"""An S3-compatible server for the dev stack: moto in server mode, as a child process.

moto keeps buckets and objects **in memory only**: uploaded files are gone when the stack stops (the
databases that point at them survive). That is the price of a pure-Python S3 with no extra binary; set
``S3_ENDPOINT`` (and ``S3_ACCESS_KEY``/``S3_SECRET_KEY``) to a MinIO or real S3 when files must persist.

moto accepts any credentials and does not check signatures, so presigned URLs made by any SDK work.
Its server wraps every response in a blanket CORS policy (flask-cors) that would answer any preflight
from any origin; we switch that off (``MOTO_DISABLE_GLOBAL_CORS``) so the *bucket's* CORS configuration,
which we set, is what browsers see, exactly as on real S3.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import httpx
from minio import Minio
from minio.error import S3Error

from devstack._process import StartupError
from devstack._server import ManagedServer

__all__ = [
    "CORS_METHODS",
    "CORS_ORIGINS",
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_BUCKET",
    "DEFAULT_PORT",
    "DEFAULT_REGION",
    "DEFAULT_SECRET_KEY",
    "S3Info",
    "S3Server",
    "start_s3",
]

logger = logging.getLogger("devstack")

#: 9000 is MinIO's customary port; the dev stack stays out of a local MinIO's way.
DEFAULT_PORT: Final = 19000
DEFAULT_BUCKET: Final = "wealist"
DEFAULT_REGION: Final = "us-east-1"
DEFAULT_ACCESS_KEY: Final = "wealist"
DEFAULT_SECRET_KEY: Final = "wealist-secret"  # noqa: S105 -- moto accepts any key; dev only
#: Web clients that upload and download straight to presigned URLs: any port on localhost/127.0.0.1
#: (Vite, the gateway's static client). S3 allows one ``*`` per origin, which is all these need.
CORS_ORIGINS: Final[tuple[str, ...]] = (
    "http://localhost",
    "http://localhost:*",
    "http://127.0.0.1",
    "http://127.0.0.1:*",
)
CORS_METHODS: Final[tuple[str, ...]] = ("GET", "PUT", "HEAD")


@dataclass(frozen=True, slots=True)
class S3Info:
    """How services reach the object store (the ``S3_*`` settings)."""

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    region: str = DEFAULT_REGION

    def client(self) -> Minio:
        """A MinIO SDK client for this endpoint."""
        parts = urlsplit(self.endpoint)
        return Minio(
            parts.netloc,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=parts.scheme == "https",
            region=self.region,
        )


class S3Server(ManagedServer):
    """moto's S3 on ``127.0.0.1:<port>`` with the bucket made and its CORS set.

    With ``external_url`` nothing is started; the bucket is created there if missing (its CORS is the
    operator's business: MinIO, for one, does not implement PutBucketCors).
    """

    name = "s3"

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int = DEFAULT_PORT,
        external_url: str | None = None,
        access_key: str = DEFAULT_ACCESS_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        bucket: str = DEFAULT_BUCKET,
        region: str = DEFAULT_REGION,
        cors_origins: Sequence[str] = CORS_ORIGINS,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(state_dir, port=port, external_url=external_url, startup_timeout=startup_timeout)
        self.access_key = access_key
        self.secret_key = secret_key
        self.bucket = bucket
        self.region = region
        self.cors_origins = tuple(cors_origins)

    @property
    def url(self) -> str:
        """Endpoint URL: ``http://127.0.0.1:<port>``, or the external one."""
        if self.external_url is not None:
            return self.external_url.rstrip("/")
        return f"http://127.0.0.1:{self.port}"

    @property
    def info(self) -> S3Info:
        """Endpoint, credentials, bucket and region, as services are configured with them."""
        return S3Info(
            endpoint=self.url,
            access_key=self.access_key,
            secret_key=self.secret_key,
            bucket=self.bucket,
            region=self.region,
        )

    def _argv(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]

    def _env(self) -> Mapping[str, str]:
        # Unbuffered, so the log holds the last request when a startup error quotes it.
        return {**os.environ, "MOTO_DISABLE_GLOBAL_CORS": "true", "PYTHONUNBUFFERED": "1"}

    def _probe(self) -> bool:
        try:
            with httpx.Client(trust_env=False, timeout=2) as http:
                return http.get(f"{self.url}/moto-api/").status_code == 200
        except httpx.TransportError:
            return False

    def _provision(self) -> None:
        client = self.info.client()
        try:
            if not client.bucket_exists(self.bucket):
                client.make_bucket(self.bucket)
                logger.info("s3: created bucket %s", self.bucket)
        except S3Error as exc:
            raise StartupError(f"S3 at {self.url}: cannot make bucket {self.bucket!r}: {exc}") from exc
        if self.embedded:
            self._put_cors()

    def _put_cors(self) -> None:
        # The shared runtime's ObjectStore does it (imported only now: the infrastructure half of the
        # dev stack works without the gRPC runtime). moto does not check its signature; S3 would.
        from mesh import ObjectStore, S3Settings  # noqa: PLC0415 - see the comment

        info = self.info
        settings = S3Settings.model_validate(
            {
                "S3_ENDPOINT": info.endpoint,
                "S3_ACCESS_KEY": info.access_key,
                "S3_SECRET_KEY": info.secret_key,
                "S3_BUCKET": info.bucket,
                "S3_REGION": info.region,
            }
        )
        try:
            ObjectStore(settings).put_bucket_cors(self.cors_origins, CORS_METHODS)
        except Exception as exc:
            raise StartupError(f"s3: PutBucketCors failed: {exc}") from exc


def start_s3(
    state_dir: Path,
    *,
    port: int = DEFAULT_PORT,
    external_url: str | None = None,
    access_key: str = DEFAULT_ACCESS_KEY,
    secret_key: str = DEFAULT_SECRET_KEY,
    bucket: str = DEFAULT_BUCKET,
    startup_timeout: float = 30.0,
) -> S3Server:
    """Start moto (or, with ``external_url``, just make the bucket there); the bucket exists on return.

    Read :attr:`S3Server.info` for the endpoint and credentials; call :meth:`S3Server.stop` when done.
    """
    return S3Server(
        state_dir,
        port=port,
        external_url=external_url,
        access_key=access_key,
        secret_key=secret_key,
        bucket=bucket,
        startup_timeout=startup_timeout,
    ).start()
