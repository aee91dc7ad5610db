"""The service kit: servicers registered from their generated base classes, and short entry points."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from wealist.board.v1 import board_pb2, board_pb2_grpc
from wealist.user.v1 import internal_pb2, internal_pb2_grpc

from mesh import hosted_of

ROOT = Path(__file__).resolve().parents[2]


class _Lookups(internal_pb2_grpc.UserInternalServiceServicer):
    pass


class _BoardAndComments(board_pb2_grpc.BoardServiceServicer, board_pb2_grpc.CommentServiceServicer):
    pass


def test_a_servicer_names_its_service_by_its_base_class() -> None:
    # The stubs declare every method abstract; finding the service needs none of them.
    (found,) = hosted_of(_Lookups())  # type: ignore[abstract]
    assert found.service is internal_pb2.DESCRIPTOR.services_by_name["UserInternalService"]
    both = [h.service.full_name for h in hosted_of(_BoardAndComments())]  # type: ignore[abstract]
    assert both == [
        board_pb2.DESCRIPTOR.services_by_name["BoardService"].full_name,
        board_pb2.DESCRIPTOR.services_by_name["CommentService"].full_name,
    ]


def test_an_object_without_a_generated_base_is_refused() -> None:
    with pytest.raises(TypeError, match="no generated servicer base class"):
        hosted_of(object())


@pytest.mark.parametrize("main", sorted(ROOT.glob("services/*/__main__.py")), ids=lambda p: p.parent.name)
def test_a_services_entry_point_only_names_its_parts(main: Path) -> None:
    tree = ast.parse(main.read_text(encoding="utf-8"))
    imported = {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    # The wiring is the kit's: no hand-built registrations, tasks or logging set-up here.
    assert not imported & {"Hosted", "configure_logging", "migrate", "Database"}
    assert not any(
        isinstance(node, ast.Import) and node.names[0].name == "asyncio" for node in ast.walk(tree)
    )
    functions = {node.name for node in tree.body if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)}
    assert {"build", "main"} <= functions
