"""Objects on S3: the one ``ObjectStore`` every service uses, and the ``S3Settings`` it reads.

Browsers move the bytes themselves, straight to and from the bucket, through presigned URLs. What keeps
that safe is what the URLs bind:

- an upload URL signs ``Content-Type`` and ``Content-Length`` (SigV4 ``SignedHeaders``), so S3 refuses a
  PUT of another type or size than the one declared when the URL was issued;
- the service HEADs the object before it accepts an upload (:meth:`ObjectStore.accept_upload`), because
  not every S3-compatible server checks signatures (the dev stack's moto does not), and refuses any size
  or type other than the declared ones;
- an accepted object is rewritten in place (a server-side copy) with the declared type and
  ``Content-Disposition: attachment``, so every download, presigned or public, is saved as a file with
  the stored type and never rendered as a page of the bucket's origin. (Response overrides on the GET
  URL would do it for presigned downloads only, and moto answers such a URL with 403 rather than 404
  once its object is gone.)

A later PUT to the same upload URL while it is still valid replaces the object again; on S3 the signature
still holds it to the declared type and size.

Presigning is computed locally (no request to the store). The MinIO SDK does the calls that do reach the
store (HEAD, deletes), in a worker thread since it blocks.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

import httpx
from minio import Minio
from minio.commonconfig import REPLACE, CopySource
from minio.credentials.credentials import Credentials
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from minio.signer import sign_v4_s3
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from urllib3.exceptions import MaxRetryError

from mesh._errors import Unavailable
from mesh._production import PUBLIC_IN_PRODUCTION, REQUIRED_IN_PRODUCTION

# What S3 (and MinIO, moto) answer for an object that is not there (HEAD has no body: the SDK reports
# ``NoSuchKey`` for moto and MinIO; some servers say ``ResourceNotFound``).
MISSING: Final = frozenset({"NoSuchKey", "NoSuchObject", "ResourceNotFound"})
_ALGORITHM: Final = "AWS4-HMAC-SHA256"
# SigV4 leaves only these characters unencoded in query strings (RFC 3986 unreserved).
_UNRESERVED: Final = "-_.~"


class S3Settings(BaseSettings):
    """The object store (``S3_*`` variables) and the lifetimes of its URLs and unconfirmed uploads.

    A service that keeps files mixes this into its settings class, beside ``MeshSettings``.
    """

    model_config = SettingsConfigDict(env_prefix="WEALIST_", extra="ignore", frozen=True)

    # The S3-compatible store (the dev stack's moto or MinIO; real S3 in production).
    s3_endpoint: str = Field(
        default="http://127.0.0.1:19000",
        validation_alias="S3_ENDPOINT",
        json_schema_extra=REQUIRED_IN_PRODUCTION,
    )
    s3_access_key: str = Field(
        default="wealist", validation_alias="S3_ACCESS_KEY", json_schema_extra=REQUIRED_IN_PRODUCTION
    )
    s3_secret_key: SecretStr = Field(
        default=SecretStr("wealist-secret"),
        validation_alias="S3_SECRET_KEY",
        json_schema_extra=REQUIRED_IN_PRODUCTION,
    )
    s3_bucket: str = Field(default="wealist", validation_alias="S3_BUCKET")
    s3_region: str = Field(default="us-east-1", validation_alias="S3_REGION")
    # What browsers see when it differs from the endpoint services use (a CDN or public host).
    s3_public_endpoint: str | None = Field(
        default=None, validation_alias="S3_PUBLIC_ENDPOINT", json_schema_extra=PUBLIC_IN_PRODUCTION
    )
    upload_url_seconds: int = Field(default=300, ge=1)
    download_url_seconds: int = Field(default=3600, ge=1)
    # An upload not confirmed within this is removed by the clean-up (:func:`mesh.sweep_uploads_forever`).
    temp_upload_seconds: int = Field(default=3600, ge=1)
    cleanup_interval_seconds: float = Field(default=3600.0, gt=0)


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a HEAD of an object says."""

    size: int
    content_type: str


def media_type(content_type: str) -> str:
    """``image/png`` of ``Image/PNG; charset=x``: parameters do not change what a file is."""
    return content_type.split(";", 1)[0].strip().lower()


def attachment_disposition(file_name: str) -> str:
    """``Content-Disposition: attachment`` naming the file, in ASCII and in UTF-8 (RFC 6266)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in file_name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


def _encode(value: str) -> str:
    return quote(value, safe=_UNRESERVED)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


class ObjectStore:
    """One bucket: presigned PUT/GET URLs, HEAD, accepting uploads, deletes and the bucket's CORS rules."""

    def __init__(self, settings: S3Settings) -> None:
        self.bucket = settings.s3_bucket
        self.region = settings.s3_region
        self._access_key = settings.s3_access_key
        self._secret_key = settings.s3_secret_key.get_secret_value()
        self.endpoint = settings.s3_endpoint.rstrip("/")
        # URLs are signed for the host browsers use, which may differ from the one services use.
        self.public_endpoint = (settings.s3_public_endpoint or settings.s3_endpoint).rstrip("/")
        self.upload_lifetime = timedelta(seconds=settings.upload_url_seconds)
        self.download_lifetime = timedelta(seconds=settings.download_url_seconds)
        parts = urlsplit(self.endpoint)
        # The region is given so that the SDK never asks the store for the bucket's location.
        self.client = Minio(
            parts.netloc,
            access_key=self._access_key,
            secret_key=self._secret_key,
            secure=parts.scheme == "https",
            region=self.region,
        )

    # --- URLs (computed here, no request) ---------------------------------------------------------------

    def _path(self, key: str) -> str:
        # Path style (``/<bucket>/<key>``) works on S3, MinIO and moto alike, whatever the bucket's name.
        return f"/{quote(self.bucket, safe='')}/{quote(key, safe='/')}"

    def presign(
        self,
        method: str,
        key: str,
        *,
        lifetime: timedelta,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> str:
        """A SigV4 query-signed URL of ``key`` on the public endpoint.

        ``headers`` are signed: the request must carry exactly these values or S3 refuses it. ``query``
        parameters (``response-content-type``, say) are signed too. The SDK signs only ``host``.
        """
        at = (now or datetime.now(UTC)).astimezone(UTC)
        stamp, day = at.strftime("%Y%m%dT%H%M%SZ"), at.strftime("%Y%m%d")
        scope = f"{day}/{self.region}/s3/aws4_request"
        public = urlsplit(self.public_endpoint)
        signed = {"host": public.netloc}
        signed.update({name.lower(): " ".join(value.split()) for name, value in (headers or {}).items()})
        names = ";".join(sorted(signed))
        params = {
            **(query or {}),
            "X-Amz-Algorithm": _ALGORITHM,
            "X-Amz-Credential": f"{self._access_key}/{scope}",
            "X-Amz-Date": stamp,
            "X-Amz-Expires": str(int(lifetime.total_seconds())),
            "X-Amz-SignedHeaders": names,
        }
        canonical_query = "&".join(
            f"{name}={value}" for name, value in sorted((_encode(k), _encode(v)) for k, v in params.items())
        )
        path = public.path.rstrip("/") + self._path(key)
        canonical_headers = "".join(f"{name}:{signed[name]}\n" for name in sorted(signed))
        canonical = f"{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{names}\nUNSIGNED-PAYLOAD"
        to_sign = f"{_ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        key_bytes = _hmac(f"AWS4{self._secret_key}".encode(), day)
        for part in (self.region, "s3", "aws4_request"):
            key_bytes = _hmac(key_bytes, part)
        signature = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        return f"{public.scheme}://{public.netloc}{path}?{canonical_query}&X-Amz-Signature={signature}"

    def upload_url(self, key: str, *, content_type: str, size: int) -> str:
        """A presigned PUT of ``key`` for exactly ``size`` bytes of ``content_type``."""
        return self.presign(
            "PUT",
            key,
            lifetime=self.upload_lifetime,
            headers={"Content-Type": content_type.strip(), "Content-Length": str(size)},
        )

    def download_url(self, key: str) -> str:
        """A presigned GET of ``key`` (its type and disposition are the object's, set when accepted)."""
        return self.presign("GET", key, lifetime=self.download_lifetime)

    def public_url(self, key: str) -> str:
        """Where browsers read an object of a public-read prefix: ``<public endpoint>/<bucket>/<key>``."""
        return self.public_endpoint + self._path(key)

    # --- calls to the store ---------------------------------------------------------------------------

    async def head(self, key: str) -> StoredObject | None:
        """Size and type of an object, or ``None`` when there is none; UNAVAILABLE if the store is down."""

        def stat() -> StoredObject | None:
            try:
                found = self.client.stat_object(self.bucket, key)
            except S3Error as error:
                if error.code in MISSING:
                    return None
                raise Unavailable(f"the object store answered {error.code}") from None
            except (OSError, MaxRetryError) as error:
                raise Unavailable(f"the object store cannot be reached: {type(error).__name__}") from None
            return StoredObject(size=found.size or 0, content_type=found.content_type or "")

        return await asyncio.to_thread(stat)

    async def exists(self, key: str) -> bool:
        """Whether an object is in the bucket."""
        return await self.head(key) is not None

    async def upload_problem(self, key: str, *, size: int, content_type: str) -> str | None:
        """Why the object at ``key`` is not the upload that was declared, or ``None`` when it is.

        Checked before a service accepts an upload: nothing there, another size, or another type.
        """
        found = await self.head(key)
        if found is None:
            return "No file has been uploaded to this key"
        if found.size != size:
            return f"the uploaded file has {found.size} bytes, not the {size} declared"
        stored, declared = media_type(found.content_type), media_type(content_type)
        if stored != declared:
            return f"the uploaded file is {stored or 'untyped'}, not {declared}"
        return None

    async def accept_upload(self, key: str, *, size: int, content_type: str, file_name: str) -> str | None:
        """Accept the object at ``key`` as the declared upload; why not, or ``None`` once accepted.

        After the HEAD of :meth:`upload_problem` the object is copied onto itself with the declared type
        and ``Content-Disposition: attachment; filename=…``, which S3 then serves on every GET.
        """
        problem = await self.upload_problem(key, size=size, content_type=content_type)
        if problem is not None:
            return problem
        metadata: dict[str, str | list[str] | tuple[str]] = {
            "Content-Type": media_type(content_type),
            "Content-Disposition": attachment_disposition(file_name),
        }

        def copy() -> None:
            try:
                self.client.copy_object(
                    self.bucket,
                    key,
                    CopySource(self.bucket, key),
                    metadata=metadata,
                    metadata_directive=REPLACE,
                )
            except S3Error as error:
                raise Unavailable(f"the object store answered {error.code}") from None
            except (OSError, MaxRetryError) as error:
                raise Unavailable(f"the object store cannot be reached: {type(error).__name__}") from None

        await asyncio.to_thread(copy)
        return None

    async def delete(self, keys: Sequence[str]) -> list[str]:
        """Delete objects (a missing one counts as deleted); returns the keys that could not be deleted."""
        if not keys:
            return []

        def remove() -> list[str]:
            errors = self.client.remove_objects(self.bucket, [DeleteObject(key) for key in keys])
            return [error.name for error in errors if error.name]

        return await asyncio.to_thread(remove)

    def put_bucket_cors(self, origins: Sequence[str], methods: Sequence[str]) -> None:
        """Let browsers of ``origins`` use presigned URLs with ``methods`` (S3 PutBucketCors).

        Blocking: it is start-up work (the dev stack sets its bucket up with it), not a service's. The
        SDK has no call for it, so the request is signed here with the SDK's SigV4 signer.
        """
        body = cors_configuration(origins, methods)
        digest = hashlib.sha256(body).hexdigest()
        url = urlsplit(f"{self.endpoint}/{quote(self.bucket, safe='')}?cors=")
        now = datetime.now(UTC)
        headers: dict[str, str | list[str] | tuple[str]] = {
            "Host": url.netloc,
            "Content-Type": "application/xml",
            # PutBucketCors requires Content-MD5; it is an integrity header, not a security one.
            "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),  # noqa: S324
            "x-amz-content-sha256": digest,
            "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ"),
        }
        signed = sign_v4_s3(
            method="PUT",
            url=url,
            region=self.region,
            headers=headers,
            credentials=Credentials(self._access_key, self._secret_key),
            content_sha256=digest,
            date=now,
        )
        with httpx.Client(trust_env=False, timeout=10) as http:
            try:
                response = http.put(
                    url.geturl(), content=body, headers={k: str(v) for k, v in signed.items()}
                )
            except httpx.TransportError as error:
                raise Unavailable(f"the object store cannot be reached: {type(error).__name__}") from None
        if response.status_code != 200:
            raise Unavailable(f"PutBucketCors answered {response.status_code}: {response.text[:300]}")


def cors_configuration(origins: Sequence[str], methods: Sequence[str]) -> bytes:
    """The PutBucketCors document: the origins may use the methods with any header and read the ETag."""
    rule = "".join(f"<AllowedOrigin>{escape(o)}</AllowedOrigin>" for o in origins)
    rule += "".join(f"<AllowedMethod>{escape(m)}</AllowedMethod>" for m in methods)
    # Browsers need ETag readable to finish multipart uploads; 50 min of preflight caching is S3's usual.
    rule += "<AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader>"
    rule += "<MaxAgeSeconds>3000</MaxAgeSeconds>"
    return (
        '<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<CORSRule>{rule}</CORSRule></CORSConfiguration>"
    ).encode()
