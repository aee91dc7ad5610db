"""The board service keeps the one skeleton too: a package per noun, ``service.py`` below ``servicer.py``.

The check is the user service's (:func:`tests.user.test_layout.layer_violations`), run here over every
service package that has noun subpackages, so a service split later is held to the rule the moment it
is split. The board's proto declares one gRPC service per noun, so each noun's servicer is registered on
its own (``services/board/__main__.py``); that every declared service is served is checked below.
"""

from __future__ import annotations

import importlib
import inspect

import pytest
from wealist.board.v1 import attachment_pb2, board_pb2, events_pb2, field_option_pb2, project_pb2

from tests.support.layout import ROOT, imports_of, layer_violations, package_modules

SERVICES = ROOT / "services"


def _split_services() -> list[str]:
    """The services with at least one noun package (a folder holding ``service.py`` or ``servicer.py``)."""
    return sorted(
        service.name
        for service in SERVICES.iterdir()
        if service.is_dir()
        and any(
            (noun / "service.py").exists() or (noun / "servicer.py").exists() for noun in service.iterdir()
        )
    )


def test_the_board_and_user_services_are_split_by_noun() -> None:
    assert {"board", "user"} <= set(_split_services())


@pytest.mark.parametrize("name", _split_services())
def test_each_split_service_keeps_its_layers(name: str) -> None:
    assert layer_violations(f"services.{name}") == []


def test_every_board_noun_is_a_package_of_two_layers() -> None:
    board = SERVICES / "board"
    for noun in sorted(path for path in board.iterdir() if (path / "servicer.py").exists()):
        assert (noun / "__init__.py").exists(), noun.name
        assert (noun / "service.py").exists(), f"{noun.name} has a servicer.py without a service.py"


def test_every_board_grpc_service_is_served_by_one_noun_that_main_registers() -> None:
    entry = importlib.import_module("services.board.__main__")
    registered = {cls for cls in vars(entry).values() if inspect.isclass(cls)}
    for module in (attachment_pb2, board_pb2, events_pb2, field_option_pb2, project_pb2):
        grpc_module = importlib.import_module(module.__name__ + "_grpc")
        for name in module.DESCRIPTOR.services_by_name:
            base = getattr(grpc_module, f"{name}Servicer")
            serving = [cls for cls in registered if issubclass(cls, base)]
            assert len(serving) == 1, f"{name} is served by {serving or 'nothing'} in __main__"
            # The one serving it is a noun's servicer (services/board/<noun>/servicer.py) or, until
            # that noun is split, the noun's module.
            assert serving[0].__module__.startswith("services.board."), serving[0]


# The outbox (gRPC to noti) and the socket events (protobuf) are the wire's: a domain function that sent
# one would tie the service layer to them again, so only servicers (and the entry point wiring them) may.
WIRE_SIDE = ("services.board.notify", "services.board.events")


def test_only_servicers_notify_or_publish_events() -> None:
    modules = package_modules(ROOT, "services.board")
    offenders = sorted(
        (name, wanted)
        for name, path in modules.items()
        if path.name != "servicer.py" and name not in {"services.board.__main__", *WIRE_SIDE}
        for wanted in WIRE_SIDE
        # ``from services.board import events`` counts as ``services.board.events`` too.
        if any(found == wanted or found.startswith(wanted + ".") for found in imports_of(path, name))
    )
    assert offenders == []
