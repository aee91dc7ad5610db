"""The ObjectStore's URL signing, against two independent SigV4 implementations (no store needed).

botocore comes with moto, the dev stack's S3 server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from urllib.parse import parse_qsl, urlsplit

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from minio import Minio

from mesh import ObjectStore, S3Settings, media_type
from mesh._objects import attachment_disposition

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
KEY = "board/boards/ws/2026/01/ünï code+~x.png"


def _store(**overrides: str) -> ObjectStore:
    return ObjectStore(S3Settings.model_validate({"S3_ENDPOINT": "http://127.0.0.1:19000", **overrides}))


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_a_host_only_url_is_the_minio_sdks() -> None:
    store = _store()
    sdk = Minio(
        "127.0.0.1:19000", access_key="wealist", secret_key="wealist-secret", secure=False, region="us-east-1"
    )
    expected = sdk.presigned_get_object("wealist", KEY, expires=timedelta(hours=1), request_date=AT)
    assert store.presign("GET", KEY, lifetime=timedelta(hours=1), now=AT) == expected


def test_signed_headers_sign_as_botocore_does(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = {"Content-Type": "image/png", "Content-Length": "10"}
    ours = _store().presign("PUT", "board/a.png", lifetime=timedelta(seconds=300), headers=headers, now=AT)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Frozen:
            moment = cls.fromtimestamp(AT.timestamp(), UTC)
            return moment if tz else moment.replace(tzinfo=None)

        @classmethod
        def utcnow(cls) -> Frozen:
            return cls.now()

    # botocore reads the clock itself; it is held at AT so that both sign the same instant.
    monkeypatch.setattr(botocore.auth.datetime, "datetime", Frozen)
    request = AWSRequest(method="PUT", url="http://127.0.0.1:19000/wealist/board/a.png", headers=headers)
    botocore.auth.S3SigV4QueryAuth(
        Credentials("wealist", "wealist-secret"), "s3", "us-east-1", expires=300
    ).add_auth(request)
    assert _query(ours) == _query(str(request.url))
    assert _query(ours)["X-Amz-SignedHeaders"] == "content-length;content-type;host"


def test_upload_urls_bind_type_and_size_on_the_public_endpoint() -> None:
    store = _store(S3_PUBLIC_ENDPOINT="https://files.example.com")
    url = store.upload_url("profiles/u/x/me.png", content_type=" image/png ", size=4)
    assert url.startswith("https://files.example.com/wealist/profiles/u/x/me.png?")
    assert _query(url)["X-Amz-SignedHeaders"] == "content-length;content-type;host"
    assert _query(url)["X-Amz-Expires"] == "300"
    assert store.public_url("profiles/u/x/me.png") == "https://files.example.com/wealist/profiles/u/x/me.png"


def test_downloads_are_named_attachments() -> None:
    assert (
        attachment_disposition("plan.pdf") == "attachment; filename=\"plan.pdf\"; filename*=UTF-8''plan.pdf"
    )
    # Quotes and non-ASCII cannot break out of the header; the UTF-8 form keeps the real name.
    assert attachment_disposition('계획 "v2".pdf') == (
        "attachment; filename=\"__ _v2_.pdf\"; filename*=UTF-8''%EA%B3%84%ED%9A%8D%20%22v2%22.pdf"
    )
    assert media_type("Text/Plain; charset=utf-8") == "text/plain"
