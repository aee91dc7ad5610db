"""The user service keeps the one skeleton: a package per noun, ``service.py`` below ``servicer.py``.

Checked on the source, so a new file or a new import cannot slip past: no ``service.py`` reaches protobuf
or gRPC, not even through another module of the service; no ``servicer.py`` speaks SQL (the session type
of the unit of work is all it may name); and the one ``UserService`` of the proto is served by the nouns'
servicers together, each RPC by exactly one of them.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from wealist.user.v1 import internal_pb2, user_pb2

from services.user.api import UserApi
from services.user.internal.servicer import UserInternalServicer
from services.user.servicer import UserServicer
from tests.support.layout import ROOT, layer_violations, package_modules

PACKAGE = "services.user"


def test_the_user_service_keeps_its_layers() -> None:
    assert layer_violations(PACKAGE) == []


def test_the_check_catches_each_kind_of_violation(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "a/__init__.py": "",
        "a/service.py": "from wealist.user.v1 import user_pb2\n",
        "b/__init__.py": "",
        "b/service.py": "import grpc\nfrom sqlmodel import col, select\n",
        # Through a module of the package: the service layer must not reach protobuf that way either.
        "c/__init__.py": "",
        "c/service.py": "from pkg.c import helper\n",
        "c/helper.py": "from grpc_status import rpc_status\n",
        "d/__init__.py": "",
        "d/servicer.py": "from sqlmodel import select\n"
        "from sqlmodel.ext.asyncio.session import AsyncSession\n",
        "e/__init__.py": "",
        "e/servicer.py": "import sqlalchemy\nfrom wealist.user.v1 import user_pb2\n",
        "f/__init__.py": "",
        "f/servicer.py": "from sqlalchemy.orm import aliased\n",
        # Fine: protobuf in a servicer, SQL in a service, the session type in a servicer.
        "ok/__init__.py": "",
        "ok/service.py": "from sqlmodel import col\nfrom pkg.ok import rules\n",
        "ok/rules.py": "import re\n",
        "ok/servicer.py": "from wealist.user.v1 import user_pb2\nfrom pkg.ok import service\n"
        "from sqlmodel.ext.asyncio.session import AsyncSession\n",
    }
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert layer_violations("pkg", tmp_path) == [
        ("pkg/a/service.py", "wealist.user.v1"),
        ("pkg/b/service.py", "grpc"),
        ("pkg/c/service.py", "grpc_status"),
        ("pkg/d/servicer.py", "sqlmodel"),
        ("pkg/e/servicer.py", "sqlalchemy"),
        ("pkg/f/servicer.py", "sqlalchemy.orm"),
    ]


def _nouns() -> list[type[UserApi]]:
    return [
        base
        for base in UserServicer.__mro__
        if issubclass(base, UserApi) and base not in (UserServicer, UserApi)
    ]


def test_every_noun_servicer_is_joined_into_the_user_servicer() -> None:
    defined = {
        cls
        for name, path in package_modules(ROOT, PACKAGE).items()
        if path.name == "servicer.py"
        for cls in vars(importlib.import_module(name)).values()
        if inspect.isclass(cls)
        and issubclass(cls, UserApi)
        and cls is not UserApi
        and cls is not UserServicer
    }
    assert defined == set(_nouns())
    # Each noun lives in its own package (services/user/<noun>/servicer.py).
    assert len({cls.__module__ for cls in defined}) == len(defined)


def test_each_rpc_is_served_by_exactly_one_noun() -> None:
    nouns = _nouns()
    for method in user_pb2.DESCRIPTOR.services_by_name["UserService"].methods:
        owners = [cls.__name__ for cls in nouns if method.name in vars(cls)]
        assert len(owners) == 1, f"UserService.{method.name} is served by {owners or 'no noun'}"
    # Two nouns with one helper name would shadow each other in the joined class.
    names = [name for cls in nouns for name in vars(cls) if not name.startswith("__")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
    for method in internal_pb2.DESCRIPTOR.services_by_name["UserInternalService"].methods:
        assert method.name in vars(UserInternalServicer), f"UserInternalService.{method.name}"
