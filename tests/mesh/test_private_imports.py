"""Nothing outside ``mesh`` imports the runtime's private modules: what it offers is in ``mesh.__all__``.

Checked on the source (every Python file of the repository but ``mesh/`` itself, its white-box tests in
``tests/mesh/`` and generated code), so a new file cannot slip past.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPED = ("mesh", "gen", "tests/mesh", "build", ".nox", ".venv", ".state", ".git")


def _private(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "mesh" and any(part.startswith("_") for part in parts[1:])


def private_imports(root: Path = ROOT) -> list[tuple[str, str]]:
    """(file, module) for every import of a private ``mesh`` module outside the skipped folders."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if any(relative == skip or relative.startswith(skip + "/") for skip in SKIPPED):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), relative)):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            found += [(relative, module) for module in modules if _private(module)][:1]
    return found


def test_no_private_mesh_import_outside_mesh() -> None:
    assert private_imports() == []


def test_the_check_sees_every_form_of_import(tmp_path: Path) -> None:
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "a.py").write_text("from mesh._db import Database\n")
    (tmp_path / "services" / "b.py").write_text("import mesh._tokens\n")
    (tmp_path / "services" / "c.py").write_text("from mesh import _errors\n")
    (tmp_path / "services" / "ok.py").write_text("from mesh import Database\nfrom . import _x\n")
    (tmp_path / "mesh").mkdir()
    (tmp_path / "mesh" / "inner.py").write_text("from mesh._db import Database\n")
    assert private_imports(tmp_path) == [
        ("services/a.py", "mesh._db"),
        ("services/b.py", "mesh._tokens"),
        ("services/c.py", "mesh._errors"),
    ]
