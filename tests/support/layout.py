"""The layering rule of a service split by noun, checked on the source.

A ``service.py`` reaches no protobuf or gRPC module, not even through another module of its service; a
``servicer.py`` speaks no SQL (the session type of the unit of work is all it may name). Used by the
layout tests of every service that has noun packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a servicer may import from SQLModel: the type of the session a unit of work hands it.
SESSION_MODULE = "sqlmodel.ext.asyncio.session"


def imports_of(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports (``from x import y`` counts as ``x`` and ``x.y``), made absolute."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def package_modules(root: Path, package: str) -> dict[str, Path]:
    """The package's modules by dotted name; ``root`` is the folder that holds the package."""
    base = root / package.replace(".", "/")
    modules = {}
    for path in sorted(base.rglob("*.py")):
        if "migrations" in path.relative_to(base).parts:
            continue
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_wire(module: str) -> bool:
    # Generated code lives in ``wealist`` (``*_pb2``, ``*_pb2_grpc``); gRPC in ``grpc`` and ``grpc_*``.
    top = module.split(".", maxsplit=1)[0]
    return top in {"wealist", "grpc"} or top.startswith("grpc_")


def _is_sql(module: str) -> bool:
    top = module.split(".", maxsplit=1)[0]
    if top == "sqlalchemy":
        return True
    return top == "sqlmodel" and not (module == SESSION_MODULE or module.startswith(SESSION_MODULE + "."))


def layer_violations(package: str, root: Path = ROOT) -> list[tuple[str, str]]:
    """(file, module) for each import that breaks the layering, sorted.

    A ``service.py`` may reach no wire module, directly or through the package's own modules; a
    ``servicer.py`` may import no SQL module itself (it calls ``service.py``, which does).
    """
    modules = package_modules(root, package)
    direct = {name: imports_of(path, name) for name, path in modules.items()}
    found: set[tuple[str, str]] = set()
    for name, path in modules.items():
        relative = path.relative_to(root).as_posix()
        if path.name == "servicer.py":
            found.update((relative, module) for module in direct[name] if _is_sql(module))
        elif path.name == "service.py":
            seen, todo = {name}, [name]
            while todo:
                for module in direct[todo.pop()]:
                    if _is_wire(module):
                        found.add((relative, module))
                    elif module in modules and module not in seen:
                        seen.add(module)
                        todo.append(module)
    # One finding per offending import statement's module is enough to point at it.
    return sorted((file, module) for file, module in found if not _covered(module, found, file))


def _covered(module: str, found: set[tuple[str, str]], file: str) -> bool:
    """``from x import y`` yields ``x`` and ``x.y``: report ``x`` only."""
    parent = module.rpartition(".")[0]
    return bool(parent) and (file, parent) in found
