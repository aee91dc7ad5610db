"""The gateway's modules import one way: no cycle among them, and nothing private of the runtime.

Every import counts, also those under ``if TYPE_CHECKING:`` or inside a function: a cycle hidden there
is still two modules that each need the other.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import gateway

PACKAGE = Path(next(iter(gateway.__path__)))


def _modules() -> dict[str, Path]:
    return {f"gateway.{path.stem}": path for path in sorted(PACKAGE.glob("*.py")) if path.stem != "__init__"}


def _imported(source: str) -> set[str]:
    """Every module name an import statement of ``source`` names (``from a import b`` names a and a.b)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(_read(path)) & set(modules) - {name} for name, path in modules.items()}


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module → modules it imports) as a path a → … → a, or None."""
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> list[str] | None:
        if node in trail:
            return [*trail[trail.index(node) :], node]
        if node in done:
            return None
        for successor in sorted(graph.get(node, ())):
            cycle = visit(successor, [*trail, node])
            if cycle is not None:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle is not None:
            return cycle
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    # The shape the gateway had: streams imported app's classes under TYPE_CHECKING, app imported streams.
    app = "from gateway import streams\n"
    streams = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gateway.app import Gateway\n"
    graph = {"gateway.app": _imported(app), "gateway.streams": _imported(streams)}
    assert find_cycle({name: names & set(graph) for name, names in graph.items()}) is not None


def test_no_gateway_module_imports_one_that_imports_it_back() -> None:
    graph = _graph()
    assert "gateway.app" in graph
    assert graph["gateway.streams"], "the graph should see streams' imports"
    assert find_cycle(graph) is None


def test_the_gateway_imports_nothing_private_of_the_runtime() -> None:
    private = {
        f"{path.name}: {name}"
        for path in _modules().values()
        for name in _imported(_read(path))
        if name.startswith("mesh._")
    }
    assert private == set()
