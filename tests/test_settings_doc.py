"""docs/settings.md is what the settings classes say today, and it lists every setting of every workload."""

from __future__ import annotations

from mesh import MeshSettings, variable_of
from tools import settings_doc
from tools.manifests import code_workloads, settings_class


def test_the_settings_page_is_current() -> None:
    assert settings_doc.OUT.read_text() == settings_doc.render(), "run python -m tools.settings_doc"


def test_every_setting_of_every_workload_is_on_the_page() -> None:
    page = settings_doc.OUT.read_text()
    for workload in [*code_workloads()]:
        for name, info in settings_class(workload.module).model_fields.items():
            if name != "workload":
                assert f"| {variable_of(name, info)} |" in page, (workload.name, name)
    assert "| REDIS_URL | str |" in page
    assert MeshSettings.model_fields["redis_url"].json_schema_extra == {"production": "required"}
