"""The optional web root: a built single-page client served beside the API from one origin."""

from __future__ import annotations

from pathlib import Path

import httpx

from devstack import StackInfo
from gateway.app import create_app
from gateway.settings import GatewaySettings


async def test_the_client_its_assets_and_config_are_served(stack: StackInfo, tmp_path: Path) -> None:
    web = tmp_path / "dist"
    (web / "assets").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>weAlist</title>")
    (web / "assets" / "app.js").write_text("console.log('app')")
    (tmp_path / "secret.txt").write_text("not for the browser")
    settings = GatewaySettings(state_dir=stack.state_dir, redis_url=stack.redis_url, web_root=web)
    app = create_app(settings, services=[])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        index = await client.get("/")
        assert index.status_code == 200
        assert "<title>weAlist</title>" in index.text
        deep_link = await client.get("/workspace/42/storage")
        assert deep_link.text == index.text
        asset = await client.get("/assets/app.js")
        assert asset.text == "console.log('app')"
        config = await client.get("/config.js")
        assert config.headers["content-type"].startswith("application/javascript")
        assert '"API_BASE_URL": ""' in config.text
        escape = await client.get("/assets/../../secret.txt")
        assert "not for the browser" not in escape.text
        api_miss = await client.get("/api/svc/nope/x")
        assert api_miss.status_code == 404
        assert api_miss.json()["error"]["code"] == "NOT_FOUND"
    await app.state.gateway.close()
