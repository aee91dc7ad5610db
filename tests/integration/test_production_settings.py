"""``WEALIST_ENVIRONMENT=production``: every workload refuses the dev defaults, and starts when configured.

The refusals run each workload as its own process with nothing but the environment set, and read what
it tells the operator. The good start runs each with what Kubernetes would give it: the ConfigMap that
``tools.manifests`` renders for a real public origin, and the Secret's keys (here the test stack's
servers, and credentials that are not the dev ones), and waits for its ``/health``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack import StackInfo, free_port
from tools.manifests import code_workloads, mesh_config
from tools.policy import Layout

WORKLOADS = {w.name: w for w in code_workloads()}
PUBLIC_ORIGIN = "https://app.wealist-demo.net"
# What each workload must name among its refusals, beside the settings every workload shares.
OWN_REFUSALS = {
    "auth": ["AUTH_PUBLIC_URL", "AUTH_ALLOWED_REDIRECTS", "AUTH_SIGNING_KEY_PEM"],
    "user": ["S3_ENDPOINT", "S3_SECRET_KEY"],
    "board": ["S3_ENDPOINT", "S3_ACCESS_KEY"],
    "noti": ["REDIS_URL"],
    "gateway": ["WEALIST_CORS_ORIGINS"],
}


def _bare_environment() -> dict[str, str]:
    """This process's environment without any of the platform's settings."""
    prefixes = ("WEALIST_", "AUTH_", "S3_", "GOOGLE_", "REDIS_URL", "DATABASE_URL", "OTEL_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def test_every_workload_is_covered() -> None:
    assert set(OWN_REFUSALS) == set(WORKLOADS)


def _refusal(name: str, env: dict[str, str]) -> str:
    """What the workload says when it refuses to start with ``env``; fails if it does not refuse."""
    done = subprocess.run(
        [sys.executable, "-m", WORKLOADS[name].module],
        env={**_bare_environment(), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "refusing to start" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_production_defaults_are_refused_with_the_variables_named(name: str) -> None:
    said = _refusal(name, {"WEALIST_ENVIRONMENT": "production"})
    for variable in ["REDIS_URL", "WEALIST_BIND_HOST", *OWN_REFUSALS[name]]:
        assert variable in said, (variable, said)


@pytest.mark.parametrize("name", ["auth", "gateway"])
def test_the_committed_manifests_placeholder_origin_is_refused(name: str) -> None:
    """istio/ is rendered for https://wealist.example: a deployment renders its own origin first."""
    config = mesh_config(Layout())
    said = _refusal(name, {**config, "REDIS_URL": "redis://redis.prod:6379/0"})
    assert "placeholder domain" in said, said
    assert "WEALIST_BIND_HOST" not in said, said


def _signing_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _secrets(stack: StackInfo) -> dict[str, str]:
    """The Secrets' keys: the test stack's servers, credentials that are not the dev stack's."""
    return {
        "REDIS_URL": stack.redis_url,
        "DATABASE_URL": stack.database_url,
        "S3_ENDPOINT": stack.s3.endpoint,
        # The test S3 server takes any credentials; production refuses the dev stack's.
        "S3_ACCESS_KEY": "production-access-key",
        "S3_SECRET_KEY": "production-secret-key",
        "S3_BUCKET": stack.s3.bucket,
        "AUTH_SIGNING_KEY_PEM": _signing_key(),
        "AUTH_SIGNING_KEY_ID": "production-key-1",
    }


@contextmanager
def _running(name: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[str]]:
    # Its log lines go to a file: a pipe nobody reads would fill and stall the process.
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", WORKLOADS[name].module], env=env, stdout=output, stderr=output, text=True
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_health(process: subprocess.Popen[str], url: str, log: Path) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode}: {log.read_text()}")
        try:
            return httpx.get(url, timeout=2).status_code
        except httpx.TransportError:
            time.sleep(0.3)
    pytest.fail(f"{url} never answered")


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_a_complete_production_configuration_starts(name: str, stack: StackInfo, tmp_path: Path) -> None:
    config = mesh_config(Layout(public_origin=PUBLIC_ORIGIN))
    grpc_port, http_port = free_port(), free_port()
    env = {
        **_bare_environment(),
        **config,
        **_secrets(stack),
        # Ports of their own, beside the test stack on this machine (not a production rule).
        "WEALIST_GRPC_PORT": str(grpc_port),
        "WEALIST_HTTP_PORT": str(http_port),
    }
    assert env["WEALIST_ENVIRONMENT"] == "production"
    log = tmp_path / f"{name}.log"
    with _running(name, env, log) as process:
        assert _wait_for_health(process, f"http://127.0.0.1:{http_port}/health", log) == 200
