"""The one front door: ``nox -s up`` runs the platform, ``nox -s tests`` tests it; ``nox -l`` lists all."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

PYTHON = "3.11"
LINT_PATHS = ["mesh", "services", "gateway", "devstack", "tools", "tests", "bench", "noxfile.py"]


def _install(session: nox.Session, extras: str) -> None:
    session.install("--upgrade", "pip")
    session.install("-e", f".[{extras}]")


@nox.session(python=PYTHON)
def up(session: nox.Session) -> None:
    """Run the whole platform on embedded Postgres, Redis and S3 (Ctrl-C stops it)."""
    _install(session, "embedded,cli")
    # devstack stops the services, then S3, Redis and Postgres, in order: give it the time to.
    session.run("python", "-m", "devstack", "up", *session.posargs, interrupt_timeout=60)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite against real Postgres, Redis and S3 (embedded unless *_URL says otherwise)."""
    _install(session, "dev")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
def proto(session: nox.Session) -> None:
    """Regenerate gen/ from proto/ (and format the protos)."""
    _install(session, "dev")
    session.run("buf", "format", "-w", "proto")
    session.run("python", "-m", "tools.protogen")
    session.run("buf", "lint")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff, mypy --strict and buf lint/format: exactly what CI checks."""
    _install(session, "dev")
    session.run("python", "-m", "tools.protogen", "--vendor-only")
    session.run("ruff", "check", *LINT_PATHS)
    session.run("ruff", "format", "--check", *LINT_PATHS)
    session.run("mypy", *LINT_PATHS)
    session.run("buf", "lint")
    session.run("buf", "format", "--diff", "--exit-code", "proto")


@nox.session(python=PYTHON)
def istio(session: nox.Session) -> None:
    """Render istio/ from proto/ and the code and validate it offline against the vendored CRD schemas.

    ``nox -s istio -- --public-origin https://wealist.acme.com --out deploy/`` renders a deployment's own
    manifests instead (any option of ``python -m tools.istio``), without the checks of the committed render.
    """
    _install(session, "dev")
    session.run("python", "-m", "tools.istio", *session.posargs)
    if session.posargs:
        return
    # The offline checks; the proof that Istio and the app decide alike needs the stack (`nox -s tests`).
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/istio/test_manifests.py",
        "tests/istio/test_policy.py",
        "tests/istio/test_authz.py",
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks, each printed beside a baseline measured in the same run."""
    _install(session, "dev")
    session.run("python", "-m", "bench.validate_token", *session.posargs)
    session.run("python", "-m", "bench.gateway")
    session.run("python", "-m", "bench.noti_fanout")
    session.run("python", "-m", "bench.board_list")
    session.run("python", "-m", "bench.tracing")


@nox.session(python=PYTHON)
def image(session: nox.Session) -> None:
    """Build the one container image (Containerfile) with podman; `-- --registry R --tag T` to rename it."""
    _install(session, "dev")
    session.run("python", "-m", "tools.image", *session.posargs)
