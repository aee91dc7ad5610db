"""Test modules share code through tests/support, never by importing one another.

A test module that imports another runs (or at least collects) the other's tests under a second name,
and ties the two together: a case moved or renamed in one breaks the other. A conftest imported as a
module is the same thing by another door: pytest loads it as a plugin, and an import makes a second copy.
Every import counts, also those inside a function or under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def _module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _is_test_module(name: str) -> bool:
    """Whether a dotted module name is a test module or a conftest of this suite."""
    parts = name.split(".")
    return parts[0] == "tests" and (parts[-1].startswith("test_") or parts[-1] == "conftest")


def _imported(source: str, module: str) -> set[str]:
    """Every module an import of ``source`` (the module ``module``) may name, relative ones resolved.

    ``from a import b`` names both ``a`` and ``a.b``: b may be a module of package a.
    """
    package = module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            origin = ".".join([*base, *([node.module] if node.module else [])])
            names.add(origin)
            names.update(f"{origin}.{alias.name}" for alias in node.names)
    return names


def cross_imports(path: Path, source: str) -> list[str]:
    """The test modules (and conftests) the test module at ``path`` imports."""
    module = _module_of(path)
    return sorted(name for name in _imported(source, module) if _is_test_module(name) and name != module)


def test_no_test_module_imports_another() -> None:
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in sorted(TESTS.rglob("test_*.py"))
        if (found := cross_imports(path, path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, "move what they share into tests/support: " + repr(offenders)


def test_the_check_sees_every_form_of_import() -> None:
    where = TESTS / "board" / "test_x.py"
    forms = {
        "from tests.board.test_tenancy import CASES": ["tests.board.test_tenancy"],
        "import tests.user.test_user_api": ["tests.user.test_user_api"],
        "from tests.board import test_tenancy": ["tests.board.test_tenancy"],
        "from .test_tenancy import CASES": ["tests.board.test_tenancy"],
        "from . import test_tenancy": ["tests.board.test_tenancy"],
        "from ..gateway.conftest import serve_gateway": ["tests.gateway.conftest"],
        "from tests.conftest import Mesh": ["tests.conftest"],
        "def f() -> None:\n    from tests.noti.test_noti_api import LIST": ["tests.noti.test_noti_api"],
        "from tests.support import login": [],
        "from tests.noti.support import event": [],
        "from gateway.routing import build_routes": [],
    }
    assert {source: cross_imports(where, source) for source in forms} == forms
