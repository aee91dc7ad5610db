"""Each service owns its SQL metadata: all their models import into one process without a clash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_services_models_import_in_one_process() -> None:
    services = sorted(path.parent.name for path in (ROOT / "services").glob("*/models.py"))
    assert {"user", "board", "noti"} <= set(services)
    # A fresh interpreter: this one may have imported some of them already.
    program = "\n".join(
        [
            "import importlib",
            "from sqlmodel import SQLModel",
            "tables = {}",
            f"for name in {services!r}:",
            "    models = importlib.import_module(f'services.{name}.models')",
            "    tables[name] = sorted(models.metadata.tables)",
            "assert not SQLModel.metadata.tables, sorted(SQLModel.metadata.tables)",
            "print(tables)",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    tables = eval(done.stdout)  # noqa: S307 - our own program's repr of a dict of lists
    # Both declare "attachments", each in its own metadata.
    assert "attachments" in tables["user"]
    assert "attachments" in tables["board"]
    assert tables["noti"] == ["notifications"]
