"""Rotating auth's signing key on the running platform: no restart, nobody logged out.

``python -m services.auth rotate-key`` writes a new key into the stack's key folder. The running auth
publishes it within a second and signs with it 10 s later; the gateway and the services, whose JWKS they
fetched just before, take its ``kid`` when the first token names it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx
import pytest

from devstack import StackInfo
from mesh import peek_header
from tests.support import BOARD, USER, login, project, workspace

pytestmark = pytest.mark.asyncio


def _rotate(stack: StackInfo) -> str:
    env = {**os.environ, "WEALIST_STATE_DIR": str(stack.state_dir)}
    command = [sys.executable, "-m", "services.auth", "rotate-key"]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().rsplit(" ", 1)[-1]


async def test_a_rotated_key_signs_at_once_and_old_tokens_stay_valid(
    client: httpx.AsyncClient, stack: StackInfo
) -> None:
    before = await login(client, "rotation")
    workspace_id = await workspace(client, before)
    created = await project(client, before, workspace_id)
    old_kid = peek_header(before.token)["kid"]

    new_kid = _rotate(stack)
    assert new_kid != old_kid
    after = await login(client, "rotation")
    for _ in range(100):  # published within a second, signing after ACTIVATION_DELAY (10 s)
        if peek_header(after.token)["kid"] == new_kid:
            break
        await asyncio.sleep(0.2)
        after = await login(client, "rotation")
    assert peek_header(after.token)["kid"] == new_kid

    jwks = (await client.get("/api/svc/auth/.well-known/jwks.json")).json()
    assert [key["kid"] for key in jwks["keys"]][:2] == [new_kid, old_kid]
    # Both tokens pass the gateway and the services behind it, which fetch the new kid's key on sight.
    for who in (before, after):
        me = await client.get(f"{USER}/api/users/me", headers=who.headers)
        assert me.status_code == 200, me.text
    board = await client.get(f"{BOARD}/api/projects/{created['projectId']}", headers=before.headers)
    assert board.status_code == 200, board.text
    outsider = await client.get(f"{BOARD}/api/projects/{created['projectId']}", headers=after.headers)
    assert outsider.status_code in (403, 404), outsider.text  # verified, then refused as a non-member
