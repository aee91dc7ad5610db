"""proto/ is the source of truth: gen/ matches it, it lints, and every method says who may call it."""

from __future__ import annotations

import filecmp
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.api import annotations_pb2
from grpc_tools import protoc

from mesh import all_files, all_services, iter_methods, method_access, methods_without_access, workload_of
from tools import protogen


def _differences(left: Path, right: Path) -> list[str]:
    comparison = filecmp.dircmp(left, right, ignore=["__pycache__"])
    found: list[str] = []
    stack = [(comparison, Path())]
    while stack:
        current, prefix = stack.pop()
        found += [f"only in committed: {prefix / n}" for n in current.left_only]
        found += [f"missing from committed: {prefix / n}" for n in current.right_only]
        found += [f"differs: {prefix / n}" for n in current.diff_files]
        stack += [(sub, prefix / name) for name, sub in current.subdirs.items()]
    return found


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    protogen.generate(tmp_path)
    assert _differences(protogen.GEN_ROOT / "wealist", tmp_path / "wealist") == [], (
        "gen/ is stale: run `nox -s proto`"
    )


def test_every_method_declares_its_access() -> None:
    methods = list(iter_methods(all_files()))
    assert len(methods) >= 15
    assert methods_without_access(all_files()) == []


def test_a_method_without_access_is_reported(tmp_path: Path) -> None:
    """The check itself can fail: a proto whose method lacks the option is caught."""
    package = tmp_path / "proto" / "probe" / "v1"
    package.mkdir(parents=True)
    (package / "probe.proto").write_text(
        'syntax = "proto3";\npackage probe.v1;\n'
        "service ProbeService { rpc Ping(PingRequest) returns (PingResponse); }\n"
        "message PingRequest {}\nmessage PingResponse {}\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    assert (
        protoc.main(["protoc", f"-I{tmp_path / 'proto'}", f"--python_out={out}", "probe/v1/probe.proto"]) == 0
    )
    sys.path.insert(0, str(out))
    try:
        probe_pb2 = importlib.import_module("probe.v1.probe_pb2")
    finally:
        sys.path.remove(str(out))
    assert methods_without_access([probe_pb2.DESCRIPTOR]) == ["/probe.v1.ProbeService/Ping"]


def test_every_service_names_its_workload() -> None:
    for service in all_services():
        assert workload_of(service), service.full_name


def test_internal_methods_have_no_rest_mapping_and_refuse_gateway() -> None:
    """A method the gateway may not call must not be routable at the gateway either, and vice versa."""
    for method in iter_methods(all_files()):
        access = method_access(method)
        has_http = method.GetOptions().HasExtension(annotations_pb2.http)
        assert has_http == ("gateway" in access.callers), access.path


def test_buf_lint_passes() -> None:
    buf = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
    if buf is None:
        pytest.fail("buf is not installed (buf-bin is a dev dependency)")
    protogen.vendor_google_protos()
    result = subprocess.run([buf, "lint"], cwd=protogen.ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
