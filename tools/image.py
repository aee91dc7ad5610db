"""The one container image of the mesh: its name, and ``nox -s image`` (``python -m tools.image``).

Every workload runs from the same image; the command picks it (``python -m services.board``), as the
manifests say. The name comes from ``[tool.wealist.image]`` in pyproject.toml and the project's version,
for both this build and :mod:`tools.manifests`, so the manifests name exactly what was built.

The build needs no registry for its base image: when none serves ``python:3.11-slim`` (as on a machine
without access to Docker Hub), an equivalent base is assembled offline with Debian's ``debootstrap``.
The project and its dependencies are built as wheels on the host first, completed with whatever the
base's own interpreter needs by its environment markers, so the image build itself runs with no network.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
CONTAINERFILE = ROOT / "Containerfile"
WHEELS = ROOT / "build" / "image" / "wheels"
# The official base where a registry serves it, else the one debootstrap makes under this name.
OFFICIAL_BASE = "docker.io/library/python:3.11-slim-bookworm"
OFFLINE_BASE = "localhost/wealist-base:bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# Binary wheels the base's glibc (2.36 in bookworm) can load, newest first.
PLATFORMS = ("manylinux_2_36", "manylinux_2_34", "manylinux_2_28", "manylinux_2_17", "manylinux2014")


def _project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


@dataclass(frozen=True, slots=True)
class Images:
    """Where the image lives: ``<registry>/<name>:<tag>``, the same for every workload."""

    registry: str
    tag: str
    name: str = "wealist-mesh"

    @classmethod
    def of_project(cls) -> Images:
        """The project's own: ``[tool.wealist.image]`` in pyproject.toml, tagged with the version."""
        project = _project()
        settings = project["tool"]["wealist"]["image"]  # type: ignore[index]
        version = project["project"]["version"]  # type: ignore[index]
        return cls(registry=str(settings["registry"]), name=str(settings["name"]), tag=str(version))

    @property
    def reference(self) -> str:
        """The full image reference."""
        return f"{self.registry}/{self.name}:{self.tag}"

    def of(self, workload: str) -> str:
        """The image a workload runs from: the one image (the command picks the workload)."""
        del workload
        return self.reference


def run_options() -> list[str]:
    """``podman run``/``build`` options for a sandboxed host, harmless elsewhere.

    runc, where installed, because crun cannot set up hybrid cgroups here; explicit limits, because the
    runtime's defaults exceed what an unprivileged sandbox may set (the current soft limit always fits).
    """
    options = []
    if shutil.which("runc"):
        options += ["--runtime", "runc"]
    open_files, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    options += ["--ulimit", f"nofile={open_files}:{open_files}", "--ulimit", "nproc=4096:4096"]
    return options


def _podman(*args: str, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True, timeout=timeout)


def _image_exists(name: str) -> bool:
    return _podman("image", "exists", name, check=False).returncode == 0


def offline_base(name: str = OFFLINE_BASE) -> str:
    """Debian bookworm, minbase, with python3, venv and CA certificates, imported as ``name``."""
    if _image_exists(name):
        return name
    if shutil.which("debootstrap") is None:
        raise RuntimeError("no registry serves the base image and debootstrap is not installed")
    with tempfile.TemporaryDirectory(prefix="wealist-rootfs-") as folder:
        rootfs = Path(folder)
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                DEBIAN_SUITE,
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            check=True,
            capture_output=True,
        )
        # What a slim image leaves out too: package lists, documentation.
        for leftover in ("var/lib/apt/lists", "usr/share/doc", "usr/share/man", "var/cache/apt"):
            shutil.rmtree(rootfs / leftover, ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["podman", "import", "--change", 'CMD ["python3"]', "-", name],
            stdin=tar.stdout,
            check=True,
            capture_output=True,
        )
        if tar.wait() != 0:
            raise RuntimeError("tar of the debootstrap folder failed")
    return name


def base_image(requested: str | None) -> str:
    """The base to build on: ``requested``, else the official one if it can be pulled, else offline."""
    if requested:
        return requested
    if _image_exists(OFFICIAL_BASE):
        return OFFICIAL_BASE
    try:
        if _podman("pull", "--quiet", OFFICIAL_BASE, check=False, timeout=120).returncode == 0:
            return OFFICIAL_BASE
    except subprocess.TimeoutExpired:
        pass
    return offline_base()


def interpreter_environment(base: str) -> dict[str, str]:
    """The PEP 508 marker environment of the base image's python3, asked inside it with no network."""
    probe = (
        "import json, os, platform, sys;"
        "print(json.dumps({'python_full_version': platform.python_version(),"
        "'python_version': '.'.join(platform.python_version_tuple()[:2]),"
        "'implementation_version': platform.python_version(),"
        "'platform_machine': platform.machine(), 'sys_platform': sys.platform, 'os_name': os.name}))"
    )
    found = _podman("run", "--rm", "--network", "none", *run_options(), base, "python3", "-c", probe)
    environment = {key: str(value) for key, value in default_environment().items()}
    environment.update(json.loads(found.stdout))
    return environment


def _requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
    return [Requirement(line.split(":", 1)[1].strip()) for line in lines if line.startswith("Requires-Dist:")]


def missing_requirements(wheels: Path, root: str, environment: dict[str, str]) -> list[str]:
    """Requirements that ``environment``'s interpreter needs and no wheel in ``wheels`` provides.

    Walks the dependency graph from ``root`` with each requirement's extras, evaluating markers for
    the target interpreter rather than for the one running this.
    """
    by_name = {canonicalize_name(parse_wheel_filename(w.name)[0]): w for w in wheels.glob("*.whl")}
    missing: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = [(canonicalize_name(root), frozenset[str]())]
    while queue:
        name, extras = queue.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for requirement in _requirements(by_name[name]):
            wanted = any(
                requirement.marker is None or requirement.marker.evaluate({**environment, "extra": extra})
                for extra in (*extras, "")
            )
            if not wanted:
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency in by_name:
                queue.append((dependency, frozenset(requirement.extras)))
            else:
                missing.add(f"{dependency}{requirement.specifier}")
    return sorted(missing)


def build_wheels(environment: dict[str, str], out: Path = WHEELS) -> None:
    """The project and every dependency as wheels in ``out``, complete for the target interpreter."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--wheel-dir", str(out), str(ROOT)], check=True)
    # setuptools leaves a copy of the sources in build/lib: not a second tree for tools to find.
    shutil.rmtree(ROOT / "build" / "lib", ignore_errors=True)
    target = [
        "--only-binary=:all:",
        "--python-version",
        environment["python_version"],
        "--implementation",
        "cp",
        *(f"--platform={tag}_{environment['platform_machine']}" for tag in PLATFORMS),
    ]
    # A dependency's own dependencies can add more: until nothing is missing.
    while missing := missing_requirements(out, "wealist-mesh", environment):
        subprocess.run([*pip, "download", "--dest", str(out), *target, *missing], check=True)


def build(images: Images, base: str | None = None) -> str:
    """Build the image; returns its reference."""
    chosen = base_image(base)
    build_wheels(interpreter_environment(chosen))
    subprocess.run(
        [
            "podman",
            "build",
            "--network",
            "none",
            *run_options(),
            "--build-arg",
            f"BASE={chosen}",
            "--tag",
            images.reference,
            "--file",
            str(CONTAINERFILE),
            str(ROOT),
        ],
        check=True,
    )
    return images.reference


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build the image and print its reference."""
    parser = argparse.ArgumentParser(prog="python -m tools.image", description=__doc__.splitlines()[0])
    defaults = Images.of_project()
    parser.add_argument("--registry", default=defaults.registry)
    parser.add_argument("--tag", default=defaults.tag)
    parser.add_argument("--base", help=f"base image (default: {OFFICIAL_BASE}, else one built offline)")
    args = parser.parse_args(argv)
    if shutil.which("podman") is None:
        sys.stderr.write("podman is not installed (Debian: apt-get install podman runc)\n")
        return 2
    reference = build(Images(registry=args.registry, tag=args.tag, name=defaults.name), args.base)
    sys.stdout.write(reference + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
