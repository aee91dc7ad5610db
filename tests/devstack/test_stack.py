"""The supervisor and the stack with stand-in services (real processes serving /health), and the CLI.

The stand-ins live in a throw-away repository so these tests say nothing about the real services,
which have their own integration tests; what is checked here is the process contract: discovery,
environment, health wait, output, failure reports and shutdown.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from devstack import (
    InfraEndpoints,
    ServiceExitedError,
    ServiceTimeoutError,
    Supervisor,
    build_service_env,
    discover_services,
    pick_port_offset,
    run_stack,
)
from devstack.supervisor import REPO_ROOT

# A service as far as the supervisor can tell: records its environment, serves /health on
# WEALIST_HTTP_PORT, says goodbye on SIGTERM; FAKE_EXIT makes it die at once, FAKE_SILENT never serve.
FAKE_SERVICE = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    name = os.environ["WEALIST_WORKLOAD"]
    Path(os.environ["WEALIST_STATE_DIR"], f"env-{name}.json").write_text(json.dumps(dict(os.environ)))
    if os.environ.get("FAKE_EXIT"):
        print("boom: cannot start", flush=True)
        sys.exit(3)
    if os.environ.get("FAKE_SILENT"):
        print("thinking...", flush=True)
        time.sleep(60)

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    def stop(signum, frame):
        print("bye", flush=True)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["WEALIST_HTTP_PORT"])), Health)
    print(f"serving {name}", flush=True)
    server.serve_forever()
    """
)


def make_repo(root: Path, services: Sequence[str], *, gateway: bool = False) -> Path:
    """A repository with a stand-in ``services/<name>`` package for each name."""
    (root / "services").mkdir(parents=True)
    (root / "services" / "__init__.py").write_text("")
    for name in services:
        package = root / "services" / name
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "__main__.py").write_text(FAKE_SERVICE)
    if gateway:
        (root / "gateway").mkdir()
        (root / "gateway" / "__init__.py").write_text("")
        (root / "gateway" / "__main__.py").write_text(FAKE_SERVICE)
    return root


INFRA = InfraEndpoints(
    database_url="postgresql://postgres@127.0.0.1:1/postgres",
    redis_url="redis://127.0.0.1:2/0",
    s3_endpoint="http://127.0.0.1:3",
    s3_access_key="k",
    s3_secret_key="s",
    s3_bucket="b",
    s3_region="us-east-1",
)


def test_discovery_finds_what_is_in_the_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, ["auth", "board"], gateway=True)
    (repo / "services" / "chat").mkdir()  # a package without __main__.py is not a service yet
    specs = {spec.name: spec for spec in discover_services(repo, port_offset=5)}
    assert list(specs) == ["auth", "board", "gateway"]
    assert (specs["auth"].grpc_port, specs["auth"].http_port) == (8085, 8185)
    assert (specs["board"].module, specs["board"].addr) == ("services.board", "127.0.0.1:8005")
    assert (specs["gateway"].grpc_port, specs["gateway"].addr) == (None, "127.0.0.1:8093")
    assert [s.name for s in discover_services(repo, names=["board"])] == ["board"]
    with pytest.raises(Exception, match="no such service"):
        discover_services(repo, names=["noti"])


def test_the_real_repository_runs_every_service_it_has() -> None:
    names = [spec.name for spec in discover_services()]
    present = [p.parent.name for p in (REPO_ROOT / "services").glob("*/__main__.py")]
    assert sorted(n for n in names if n != "gateway") == sorted(n for n in present if n != "gateway")


def test_service_environment_follows_the_settings_contract(tmp_path: Path) -> None:
    specs = discover_services(make_repo(tmp_path / "repo", ["auth", "user"], gateway=True))
    auth, _, gateway = specs
    env = build_service_env(
        auth,
        specs,
        state_dir=tmp_path,
        infra=INFRA,
        extra_env={"AUTH_TEST_LOGIN_ENABLED": "true", "S3_BUCKET": "override"},
        base_env={"PATH": "/bin", "WEALIST_GRPC_PORT": "1"},
    )
    assert env["PATH"] == "/bin"
    assert env["WEALIST_STATE_DIR"] == str(tmp_path.resolve())
    assert (env["WEALIST_WORKLOAD"], env["WEALIST_GRPC_PORT"], env["WEALIST_HTTP_PORT"]) == (
        "auth",
        "8080",
        "8180",
    )
    assert env["WEALIST_USER_ADDR"] == "127.0.0.1:8081"
    assert env["WEALIST_GATEWAY_ADDR"] == "127.0.0.1:8088"
    assert env["DATABASE_URL"] == INFRA.database_url
    assert env["S3_BUCKET"] == "override", "the caller's extra variables win"
    assert env["AUTH_TEST_LOGIN_ENABLED"] == "true"
    gateway_env = build_service_env(
        gateway, specs, state_dir=tmp_path, infra=INFRA, base_env={"WEALIST_GRPC_PORT": "1"}
    )
    assert "WEALIST_GRPC_PORT" not in gateway_env
    assert gateway_env["WEALIST_HTTP_PORT"] == "8088"


def test_supervisor_waits_for_health_prefixes_output_and_stops_gracefully(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", ["auth", "user"])
    specs = discover_services(repo, port_offset=pick_port_offset())
    lines: list[str] = []
    supervisor = Supervisor(repo_root=repo, output=lines.append)
    try:
        for spec in specs:
            supervisor.start(spec, build_service_env(spec, specs, state_dir=tmp_path, infra=INFRA))
        healthy = supervisor.wait_healthy(timeout=20)
        assert set(healthy) == {"auth", "user"}
    finally:
        codes = supervisor.stop()
    assert codes == {"auth": 0, "user": 0}
    assert "   auth | serving auth" in lines
    assert "   user | bye" in lines


def test_supervisor_reports_a_service_that_dies_at_start(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", ["auth", "user"])
    specs = discover_services(repo, port_offset=pick_port_offset())
    supervisor = Supervisor(repo_root=repo, output=lambda line: None)
    try:
        for spec in specs:
            extra = {"FAKE_EXIT": "1"} if spec.name == "user" else {}
            supervisor.start(
                spec, build_service_env(spec, specs, state_dir=tmp_path, infra=INFRA, extra_env=extra)
            )
        with pytest.raises(ServiceExitedError) as failure:
            supervisor.wait_healthy(timeout=20)
    finally:
        supervisor.stop()
    assert (failure.value.name, failure.value.returncode) == ("user", 3)
    assert "boom: cannot start" in str(failure.value)


def test_supervisor_times_out_naming_the_laggard(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", ["auth"])
    (spec,) = discover_services(repo, port_offset=pick_port_offset())
    supervisor = Supervisor(repo_root=repo, output=lambda line: None)
    env = build_service_env(spec, [spec], state_dir=tmp_path, infra=INFRA, extra_env={"FAKE_SILENT": "1"})
    try:
        supervisor.start(spec, env)
        with pytest.raises(ServiceTimeoutError, match=r"(?s)not healthy after 1 s: auth.*thinking\.\.\."):
            supervisor.wait_healthy(timeout=1)
    finally:
        codes = supervisor.stop(grace=1)
    assert codes["auth"] == -signal.SIGTERM, "still starting up, it dies of the SIGTERM"


def test_stack_starts_infrastructure_pki_and_services_then_stops_them(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", ["auth", "user", "board"])
    pki_calls: list[tuple[Path, list[str]]] = []
    state = tmp_path / "state"
    offset = pick_port_offset()
    with run_stack(
        state,
        offset,
        {"AUTH_TEST_LOGIN_ENABLED": "true"},
        repo_root=repo,
        environ={"PATH": os.environ.get("PATH", "")},
        output=lambda line: None,
        ensure_pki=lambda state_dir, workloads: pki_calls.append((state_dir, list(workloads))),
    ) as info:
        assert list(info.services) == ["auth", "user", "board"]
        assert info.services["board"].addr == f"127.0.0.1:{8000 + offset}"
        assert info.database_url == f"postgresql://postgres@127.0.0.1:{15432 + offset}/postgres"
        assert info.redis_url == f"redis://127.0.0.1:{16379 + offset}/0"
        assert info.s3.endpoint == f"http://127.0.0.1:{19000 + offset}"
        # Every identity of the platform gets a certificate, running or not, so tools can act as it.
        every_workload = ["auth", "user", "board", "chat", "noti", "storage", "ops", "gateway", "debug"]
        assert pki_calls == [(state.resolve(), every_workload)]
        env = json.loads((state / "env-board.json").read_text())
        assert env["DATABASE_URL"] == info.database_url
        assert env["S3_ENDPOINT"] == info.s3.endpoint
        assert env["WEALIST_AUTH_ADDR"] == f"127.0.0.1:{8080 + offset}"
        assert env["AUTH_TEST_LOGIN_ENABLED"] == "true"
        services = info.to_json()["services"]
        assert isinstance(services, dict)
        assert services["auth"]["metrics_url"] == f"http://127.0.0.1:{8180 + offset}/metrics"
    # Everything is down and the state folder is free for the next run.
    assert not (state / "postgres" / "data" / "postmaster.pid").exists()
    with run_stack(
        state, offset, services=[], output=lambda line: None, ensure_pki=lambda s, w: None
    ) as info:
        assert info.services == {}


def test_cli_up_prints_writes_the_ready_file_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    offset = pick_port_offset()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "up", "--state-dir", str(tmp_path / "state"),
         "--port-offset", str(offset), "--services", "", "--ready-file", str(ready)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "the stack did not come up"
        document = json.loads(ready.read_text())
        assert document["redis"]["url"] == f"redis://127.0.0.1:{16379 + offset}/0"
        assert document["pid"] == proc.pid
        # What a terminal's Ctrl-C does: SIGINT to the foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    text = output.decode()
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert "weAlist mesh is up in" in text
    assert f"postgresql://postgres@127.0.0.1:{15432 + offset}/postgres" in text
    assert not ready.exists(), "the ready file goes away with the stack"
    assert not (tmp_path / "state" / "postgres" / "data" / "postmaster.pid").exists()
