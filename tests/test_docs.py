"""docs/ stays true to the code, and the repository stands on its own.

- Each documented service's page lists exactly the REST routes the gateway builds for it from the
  descriptors, and names every RPC of the workload, internal ones included; a new or removed route fails
  here until its page says so.
- Every relative link in README.md and docs/ resolves to a file of the repository (and a heading, when it
  names one).
- No tracked file points at a path outside the repository: whoever clones it has nothing else.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.routing import Route, build_routes
from mesh import all_services, services_of

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# The services that exist as code; chat, storage and ops get a page when they do.
DOCUMENTED = ("auth", "user", "board", "noti")
# A route in a page's table: a row starting with `VERB /template`.
ROUTE_ROW = re.compile(r"^\|\s*`(GET|POST|PUT|PATCH|DELETE) (/\S*?)`", re.MULTILINE)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
EXTERNAL = ("http://", "https://", "mailto:")
# Spelled in two parts so that this file does not match itself.
OUTSIDE = ("../" + "shared", "/" + "work/")
# Folders of a working tree that are not the repository's (used when git is not at hand).
UNTRACKED_DIRS = {".git", ".nox", ".venv", ".state", "build", "third_party", ".mypy_cache", ".ruff_cache"}

ROUTES = build_routes(list(all_services()))


def _route_key(route: Route) -> str:
    return f"{route.verb} {route.template.source}"


def _row(route: Route) -> str:
    return f"| `{_route_key(route)}` | {route.method.name} | |"


def _page(workload: str) -> str:
    return (DOCS / "services" / f"{workload}.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("workload", DOCUMENTED)
def test_a_service_page_lists_exactly_the_routes_the_gateway_serves(workload: str) -> None:
    served = {_route_key(route): route for route in ROUTES if route.workload == workload}
    listed = {f"{verb} {path}" for verb, path in ROUTE_ROW.findall(_page(workload))}
    missing = [served[key] for key in served if key not in listed]
    assert not missing, f"docs/services/{workload}.md lacks these routes:\n" + "\n".join(
        _row(route) for route in missing
    )
    unknown = sorted(listed - served.keys())
    assert not unknown, f"docs/services/{workload}.md lists routes the gateway does not serve: {unknown}"


@pytest.mark.parametrize("workload", DOCUMENTED)
def test_a_service_page_names_every_rpc_of_its_workload(workload: str) -> None:
    page = _page(workload)
    methods = [
        f"{service.name}.{method.name}"
        for service in services_of(workload)
        for method in service.methods_by_name.values()
    ]
    assert methods, f"{workload} serves no RPC"
    unnamed = [name for name in methods if name.split(".")[1] not in page]
    assert not unnamed, f"docs/services/{workload}.md does not name {unnamed}"


def test_every_workload_with_routes_has_a_page() -> None:
    undocumented = sorted({route.workload for route in ROUTES} - set(DOCUMENTED))
    assert not undocumented, f"no page in docs/services/ for {undocumented}"
    for workload in DOCUMENTED:
        assert (DOCS / "services" / f"{workload}.md").is_file()


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def _slug(heading: str) -> str:
    """The anchor a heading gets on the usual Markdown renderers (GitHub's rule)."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_slug(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def _links(path: Path) -> Iterator[str]:
    text = INLINE_CODE.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))
    yield from LINK.findall(text)


def _resolves(source: Path, target: str) -> bool:
    """Whether a relative link of ``source`` names a file of the repository (and a heading it has)."""
    file_part, _, anchor = target.partition("#")
    resolved = (source.parent / file_part).resolve() if file_part else source
    if not resolved.is_relative_to(ROOT) or not resolved.exists():
        return False
    return not anchor or resolved.suffix != ".md" or anchor in _anchors(resolved)


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path: Path) -> None:
    broken = [
        target for target in _links(path) if not target.startswith(EXTERNAL) and not _resolves(path, target)
    ]
    assert not broken, f"{path.relative_to(ROOT)}: broken links {broken}"


def test_the_readme_links_into_docs() -> None:
    targets = set(_links(ROOT / "README.md"))
    assert "docs/README.md" in targets
    assert any(target.startswith("docs/services/") for target in targets)


def _tracked_files() -> list[Path]:
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listing.returncode == 0 and listing.stdout:
        return [ROOT / name for name in listing.stdout.decode().split("\0") if name]
    # Not a git checkout (an unpacked archive, say): everything but the tools' own folders.
    return [
        path
        for path in ROOT.rglob("*")
        if path.is_file() and not UNTRACKED_DIRS & set(path.relative_to(ROOT).parts)
    ]


def test_no_tracked_file_refers_to_a_path_outside_the_repository() -> None:
    offenders = []
    for path in _tracked_files():
        if not path.is_file():
            continue  # deleted in the working tree, not yet committed
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        for needle in OUTSIDE:
            for number, line in enumerate(text.splitlines(), start=1):
                if needle in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {needle}")
    assert not offenders, "paths outside the repository:\n" + "\n".join(offenders)
