"""The container image: its Containerfile agrees with the manifests, and the built image really serves.

The build and run need podman (``.ci/run`` installs it, with runc and debootstrap); without podman those
tests are skipped and say why. The agreement checks need nothing.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
import yaml
from grpc_health.v1 import health_pb2

from devstack import free_port, start_redis
from gateway.mounts import GATEWAY_WORKLOAD
from tools.image import CONTAINERFILE, ROOT, WHEELS, Images, build, run_options
from tools.istio import render
from tools.manifests import RUN_AS, code_workloads

Resource = dict[str, Any]


def _deployments() -> dict[str, Resource]:
    found = {}
    for text in render().values():
        for document in yaml.safe_load_all(text):
            if document and document["kind"] == "Deployment":
                found[document["metadata"]["name"]] = document["spec"]["template"]["spec"]
    return found


def _instruction(name: str) -> list[str]:
    """The arguments of every ``name`` instruction of the Containerfile's final stage."""
    final_stage = CONTAINERFILE.read_text().rsplit("\nFROM ", 1)[1]
    return [line.split(None, 1)[1] for line in final_stage.splitlines() if line.startswith(f"{name} ")]


def test_the_manifests_run_the_image_that_is_built() -> None:
    image = Images.of_project().reference
    for name, pod in _deployments().items():
        assert pod["containers"][0]["image"] == image, name


def test_every_manifest_command_is_a_module_the_image_holds() -> None:
    for name, pod in _deployments().items():
        command = pod["containers"][0]["command"]
        assert command[:2] == ["python", "-m"], name
        assert importlib.util.find_spec(f"{command[2]}.__main__") is not None, command


def test_the_image_runs_as_the_manifests_user_and_exposes_their_ports() -> None:
    assert _instruction("ARG") == [f"UID={RUN_AS}"]
    assert _instruction("USER") == ["${UID}:${UID}"]
    exposed = {int(port) for line in _instruction("EXPOSE") for port in line.split()}
    for workload in code_workloads():
        for port in workload.ports:
            assert port.number in exposed, (workload.name, port)
    for name, pod in _deployments().items():
        container = pod["containers"][0]
        assert pod["securityContext"]["runAsUser"] == RUN_AS
        probe = container["readinessProbe"]["httpGet"]
        assert probe["path"] == "/health"
        assert probe["port"] in {p["name"] for p in container["ports"]}, name


# --- the built image -------------------------------------------------------------------------------

needs_podman = pytest.mark.skipif(
    shutil.which("podman") is None,
    reason="podman is not installed (.ci/run installs podman, runc and debootstrap)",
)


@pytest.fixture(scope="module")
def image() -> str:
    return build(Images.of_project())


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with start_redis(tmp_path_factory.mktemp("image-redis"), port=free_port()) as server:
        yield server.url


def _run(image: str, name: str, module: str, env: dict[str, str]) -> str:
    """Start ``module`` from the image as the manifests do: non-root, read-only root, /tmp writable."""
    container = f"wealist-test-{name}-{free_port()}"
    flags = [f"--env={key}={value}" for key, value in env.items()]
    subprocess.run(
        [
            "podman",
            "run",
            "--detach",
            "--name",
            container,
            *run_options(),
            # The services talk to the test's Redis on the loopback, as a sidecar would let them.
            "--network",
            "host",
            "--read-only",
            "--tmpfs",
            "/tmp",  # noqa: S108 - the container's own, as the manifests' emptyDir
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            *flags,
            image,
            "python",
            "-m",
            module,
        ],
        check=True,
        capture_output=True,
    )
    return container


def _wait_for_health(url: str, container: str) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                logs = subprocess.run(
                    ["podman", "logs", container], check=False, capture_output=True, text=True
                )
                pytest.fail(f"{url} never answered:\n{logs.stdout}{logs.stderr}")
            time.sleep(0.5)


def _stop(container: str) -> None:
    subprocess.run(["podman", "rm", "--force", container], capture_output=True, check=False)


def _grpc_health(port: int) -> int:
    """gRPC health as the gateway's sidecar would forward it: plaintext, the caller named in XFCC."""
    caller = f"By=spiffe://cluster.local/ns/wealist/sa/auth;URI=spiffe://cluster.local/ns/wealist/sa/{GATEWAY_WORKLOAD}"
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        reply = check(
            health_pb2.HealthCheckRequest(), timeout=10, metadata=(("x-forwarded-client-cert", caller),)
        )
    return int(reply.status)


def _mesh_env(redis_url: str) -> dict[str, str]:
    # Behind a sidecar (istio_mode): plaintext to the loopback, no certificates in the image.
    return {
        "WEALIST_ISTIO_MODE": "true",
        "WEALIST_BIND_HOST": "127.0.0.1",
        "WEALIST_ENVIRONMENT": "test",
        "REDIS_URL": redis_url,
    }


@needs_podman
def test_the_gateway_serves_from_the_image(image: str, redis_url: str) -> None:
    port = free_port()
    container = _run(image, "gateway", "gateway", {**_mesh_env(redis_url), "WEALIST_HTTP_PORT": str(port)})
    try:
        health = _wait_for_health(f"http://127.0.0.1:{port}/health", container)
        assert health.status_code == 200
        assert health.json()["service"] == "gateway"
        # The routes come from the descriptors inside the installed package, not from a checkout.
        document = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5).json()
        assert any(path.startswith("/api/svc/board/") for path in document["paths"])
        user = subprocess.run(
            ["podman", "exec", container, "id", "-u"], check=True, capture_output=True, text=True
        )
        assert user.stdout.strip() == str(RUN_AS)
    finally:
        _stop(container)


@needs_podman
def test_a_grpc_service_serves_from_the_image(image: str, redis_url: str) -> None:
    grpc_port, http_port = free_port(), free_port()
    env = {**_mesh_env(redis_url), "WEALIST_GRPC_PORT": str(grpc_port), "WEALIST_HTTP_PORT": str(http_port)}
    container = _run(image, "auth", "services.auth", env)
    try:
        health = _wait_for_health(f"http://127.0.0.1:{http_port}/health", container)
        assert health.status_code == 200
        assert _grpc_health(grpc_port) == health_pb2.HealthCheckResponse.SERVING
    finally:
        _stop(container)


def test_the_build_copies_only_the_wheels_tools_image_builds() -> None:
    sources = [
        line.split()[1]
        for line in CONTAINERFILE.read_text().splitlines()
        if line.startswith("COPY ") and "--from=" not in line
    ]
    assert sources == [f"{WHEELS.relative_to(ROOT)}/"]
