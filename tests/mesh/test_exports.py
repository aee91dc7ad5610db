"""The runtime's public surface is exactly its ``__all__``."""

from __future__ import annotations

import mesh


def test_every_exported_name_exists_and_is_public() -> None:
    for name in mesh.__all__:
        assert hasattr(mesh, name), name
        assert not name.startswith("_")
    assert sorted(mesh.__all__) == sorted(set(mesh.__all__))


def test_exported_objects_are_documented() -> None:
    undocumented = [
        name
        for name in mesh.__all__
        if callable(getattr(mesh, name)) and not (getattr(mesh, name).__doc__ or "").strip()
    ]
    assert undocumented == []
