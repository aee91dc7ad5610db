"""The embedded infrastructure over real sockets: Postgres, Redis and the S3 server, each started,
used the way services use it, stopped and (where it persists) started again."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from devstack import StartupError, free_port, start_postgres, start_redis, start_s3
from devstack.postgres import DATABASES, PostgresServer
from devstack.redis import RedisServer
from devstack.s3 import S3Server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    # trust_env=False: a proxy from the environment must not capture requests to 127.0.0.1.
    with httpx.Client(trust_env=False, timeout=10) as client:
        yield client


def test_postgres_has_the_six_databases_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    port = free_port()
    with start_postgres(tmp_path, port=port) as pg:
        assert pg.url == f"postgresql://postgres@127.0.0.1:{port}/postgres"
        assert sorted(pg.created_databases) == sorted(DATABASES)
        with psycopg.connect(pg.url) as conn:
            names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        assert set(DATABASES) <= names
        board_url = pg.url.rsplit("/", 1)[0] + "/wealist_board"
        with psycopg.connect(board_url) as conn:
            conn.execute("CREATE TABLE note (body text)")
            conn.execute("INSERT INTO note VALUES ('survives a restart')")
    assert not (tmp_path / "postgres" / "data" / "postmaster.pid").exists(), "fast shutdown completed"

    with start_postgres(tmp_path, port=port) as pg:
        assert pg.created_databases == [], "the cluster and its databases were kept"
        with psycopg.connect(board_url) as conn:
            assert conn.execute("SELECT body FROM note").fetchall() == [("survives a restart",)]


def test_postgres_with_an_external_url_starts_nothing_and_creates_the_databases(tmp_path: Path) -> None:
    with start_postgres(tmp_path / "server", port=free_port()) as server:
        external = PostgresServer(tmp_path / "client", external_url=server.url, databases=["wealist_extra"])
        with external:
            assert external.url == server.url
            assert external.pid is None
            assert external.created_databases == ["wealist_extra"]
        assert not (tmp_path / "client" / "postgres").exists()
        with psycopg.connect(server.url) as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'wealist_extra'").fetchone()
        assert row == (1,)


def test_postgres_refuses_a_state_folder_in_use(tmp_path: Path) -> None:
    with start_postgres(tmp_path, port=free_port()), pytest.raises(StartupError, match="in use by pid"):
        start_postgres(tmp_path, port=free_port())


def test_redis_serves_tcp_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    port = free_port()
    with start_redis(tmp_path, port=port) as server:
        assert server.url == f"redis://127.0.0.1:{port}/0"
        with redis.Redis.from_url(server.url) as client:
            client.set("blacklist:token", "revoked")
    assert (tmp_path / "redis" / "appendonly.aof").exists()

    with start_redis(tmp_path, port=port) as server, redis.Redis.from_url(server.url) as client:
        assert client.get("blacklist:token") == b"revoked"


def test_redis_with_an_external_url_only_checks_it(tmp_path: Path) -> None:
    with (
        start_redis(tmp_path / "server", port=free_port()) as server,
        RedisServer(tmp_path / "client", external_url=server.url) as external,
    ):
        assert external.url == server.url
        assert external.pid is None
    with pytest.raises(StartupError, match="does not answer PING"):
        RedisServer(tmp_path / "client", external_url=f"redis://127.0.0.1:{free_port()}/0").start()


def test_a_taken_port_is_reported_clearly(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=f"127.0.0.1:{port} is already in use"):
            start_redis(tmp_path, port=port)


def test_s3_presigned_put_then_get(tmp_path: Path, http: httpx.Client) -> None:
    with start_s3(tmp_path, port=free_port()) as s3:
        info = s3.info
        assert (info.access_key, info.secret_key, info.bucket) == ("wealist", "wealist-secret", "wealist")
        client = info.client()
        put_url = client.presigned_put_object(info.bucket, "avatars/a.png", expires=dt.timedelta(minutes=5))
        assert http.put(put_url, content=b"\x89PNG...").status_code == 200
        get_url = client.presigned_get_object(info.bucket, "avatars/a.png")
        response = http.get(get_url)
        assert response.status_code == 200
        assert response.content == b"\x89PNG..."


def test_s3_bucket_cors_answers_preflights_from_local_origins_only(
    tmp_path: Path, http: httpx.Client
) -> None:
    with start_s3(tmp_path, port=free_port()) as s3:
        url = f"{s3.url}/{s3.bucket}/avatars/a.png"
        for origin in ("http://localhost:5173", "http://127.0.0.1:8088"):
            preflight = http.options(
                url,
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "PUT",
                    "Access-Control-Request-Headers": "content-type",
                },
            )
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == origin
            assert "PUT" in preflight.headers["access-control-allow-methods"]
        # moto's own allow-everything CORS is switched off, so the bucket's rules decide, as on S3.
        foreign = http.options(
            url, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"}
        )
        assert foreign.status_code == 403
        assert "access-control-allow-origin" not in foreign.headers


def test_s3_with_an_external_endpoint_makes_the_bucket_there(tmp_path: Path) -> None:
    with start_s3(tmp_path / "server", port=free_port()) as server:
        with S3Server(tmp_path / "client", external_url=server.url, bucket="wealist-other") as external:
            assert external.pid is None
            assert external.info.endpoint == server.url
        assert server.info.client().bucket_exists("wealist-other")
