"""The ``/docs`` page: Swagger UI rendering the gateway's ``/openapi.json``, every asset served locally.

The static files come from the ``swagger-ui-py`` wheel, which ships Swagger UI 5 (the first major
version that renders OpenAPI 3.1; the ``swagger-ui-bundle`` wheel still carries 4.x, which refuses a
3.1 document). Only its static folder is used: the package itself is never imported (its import pulls
in web-framework handlers we have no use for). The gateway mounts ``assets_directory()`` at some URL
and passes that URL to ``docs_html``; nothing is fetched from a CDN.
"""

from __future__ import annotations

import html
import importlib.util
import json
from pathlib import Path

# The files docs_html references, relative to assets_directory().
ASSET_FILES = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")


def assets_directory() -> Path:
    """The folder holding Swagger UI's JS and CSS (``swagger_ui/static`` of the ``swagger-ui-py`` wheel).

    Found without importing the package. Raises FileNotFoundError when the wheel is not installed.
    """
    spec = importlib.util.find_spec("swagger_ui")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        static = Path(location) / "static"
        if all((static / name).is_file() for name in ASSET_FILES):
            return static
    raise FileNotFoundError("Swagger UI's static files were not found: install the swagger-ui-py package")


def _script_literal(value: str) -> str:
    """A JSON string literal that is safe inside an inline <script> (no '</script>' can close it)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def docs_html(openapi_url: str, assets_url: str, *, title: str = "weAlist API") -> str:
    """The HTML of the docs page: Swagger UI loading ``openapi_url``, its files under ``assets_url``.

    ``assets_url`` is where the gateway serves ``assets_directory()`` (``/docs/assets``, say). Try-it-out
    requests go to the page's own origin, where the gateway answers.
    """
    assets = html.escape(assets_url.rstrip("/"), quote=True)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
<style>body {{ margin: 0; background: #fafafa; }}</style>
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: {_script_literal(openapi_url)},
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
}});
</script>
</body>
</html>
"""
