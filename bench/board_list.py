"""The kanban listing, ``GET /api/boards/project/{id}`` with 200 boards, against its own SQL on Postgres.

``python -m bench.board_list [--boards N] [--seconds S] [--concurrency C]`` (``nox -s bench``) starts
the platform on embedded servers, logs in an owner and two members, creates a project and N boards
(custom fields set, both members taking part), then measures for S seconds at concurrency C:

(b) the route through the gateway over HTTP (keep-alive connections, the owner's token): the gateway
    checks the token, calls board over mTLS; board checks the token again, the caller's workspace
    membership (cached) and project role, runs its queries and builds the JSON;
(a) the baseline: the statements the service runs for that route (taken from the service: the project
    with its options, then the boards with their participants; no board has files here), sent straight
    to the same Postgres with psycopg, C connections, one transaction per call as the service does.

It prints requests/s with p50/p95/p99 of both and the ratio (b)/(a). The load generator shares the
machine with every server.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from bench.load import Call, CpuMeter, HttpConnection, Result, concurrent
from devstack import Stack, StackInfo, pick_port_offset
from services.board.boards import service as boards

BOARD = "/api/svc/board"


def _route_sql(project_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    """The statements ListBoards runs for a project without files, compiled for psycopg, with parameters.

    They are taken from the service itself, so the baseline keeps measuring the route's own SQL.
    """
    dialect = postgresql.psycopg.dialect(paramstyle="pyformat")  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy
    compiled = [statement.compile(dialect=dialect) for statement in boards.LISTING_STATEMENTS]
    return [(str(each), {**each.params, "project_id": project_id}) for each in compiled]


async def _login(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    reply = await client.post("/api/svc/auth/api/test/token", json={"email": email})
    reply.raise_for_status()
    body: dict[str, Any] = reply.json()
    return body


async def _seed(info: StackInfo, boards: int) -> tuple[str, str, str]:
    """An owner's project with ``boards`` boards; returns (token, user id, project id)."""
    async with httpx.AsyncClient(base_url=info.services["gateway"].http_base, timeout=30) as client:
        owner = await _login(client, "bench-owner@example.com")
        members = [await _login(client, f"bench-member-{n}@example.com") for n in range(2)]
        headers = {"Authorization": f"Bearer {owner['accessToken']}"}
        reply = await client.post(
            "/api/svc/user/api/workspaces/create", headers=headers, json={"workspaceName": "Bench"}
        )
        reply.raise_for_status()
        workspace = reply.json()["workspaceId"]
        for n in range(2):
            invited = await client.post(
                f"/api/svc/user/api/workspaces/{workspace}/members/invite",
                headers=headers,
                json={"email": f"bench-member-{n}@example.com"},
            )
            invited.raise_for_status()
        reply = await client.post(
            f"{BOARD}/api/projects", headers=headers, json={"workspaceId": workspace, "name": "Bench"}
        )
        reply.raise_for_status()
        project = reply.json()["data"]["projectId"]
        stages = ("pending", "in_progress", "review", "approved")
        for n in range(boards):
            created = await client.post(
                f"{BOARD}/api/boards",
                headers=headers,
                json={
                    "projectId": project,
                    "title": f"Card {n}",
                    "content": "Some words about the work to do. " * 4,
                    "customFields": {"stage": stages[n % 4], "importance": "normal", "role": "developer"},
                    "participants": [member["userId"] for member in members],
                    "startDate": "2026-12-01T00:00:00Z",
                    "dueDate": "2026-12-20T00:00:00Z",
                },
            )
            created.raise_for_status()
        return str(owner["accessToken"]), str(owner["userId"]), str(project)


async def _through_gateway(
    info: StackInfo,
    token: str,
    project: str,
    boards: int,
    *,
    concurrency: int,
    seconds: float,
    meter: CpuMeter,
) -> tuple[Result, dict[str, float]]:
    port = int(info.services["gateway"].http_base.rsplit(":", 1)[1])
    path = f"{BOARD}/api/boards/project/{project}"
    headers = {"Authorization": f"Bearer {token}"}
    connections = [await HttpConnection.open(port, path, headers) for _ in range(concurrency)]

    def call_on(connection: HttpConnection) -> Call:
        async def call() -> None:
            status, _ = await connection.get()
            if status != 200:
                raise RuntimeError(f"HTTP {status} from the gateway")

        return call

    try:
        status, body = await connections[0].get()
        if status != 200 or body.count(b'"boardId"') != boards:
            raise RuntimeError(f"the listing is not the {boards} boards: HTTP {status}")
        before = meter.snapshot()
        result = await concurrent([call_on(c) for c in connections], seconds)
        return result, meter.per_request_us(before, meter.snapshot(), result.requests)
    finally:
        for connection in connections:
            await connection.close()


async def _straight_to_postgres(info: StackInfo, project: str, *, concurrency: int, seconds: float) -> Result:
    url = make_url(info.database_url).set(drivername="postgresql", database="wealist_board")
    dsn = url.render_as_string(hide_password=False)
    connections = [await psycopg.AsyncConnection.connect(dsn, autocommit=True) for _ in range(concurrency)]
    statements = _route_sql(uuid.UUID(project))

    def call_on(connection: psycopg.AsyncConnection[Any]) -> Call:
        async def call() -> None:
            # One transaction per call, as the service's unit of work.
            async with connection.transaction(), connection.cursor() as cursor:
                for statement, params in statements:
                    await cursor.execute(statement, params)
                    await cursor.fetchall()

        return call

    try:
        return await concurrent([call_on(c) for c in connections], seconds)
    finally:
        for connection in connections:
            await connection.close()


def main() -> None:
    """Seed, measure both, print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.board_list", description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wealist-board-bench-") as tmp:
        env = {"AUTH_TEST_LOGIN_ENABLED": "true", "WEALIST_LOG_LEVEL": "WARNING"}
        stack = Stack(Path(tmp), port_offset=pick_port_offset(), extra_env=env, output=lambda line: None)
        with stack as info:
            token, _, project = asyncio.run(_seed(info, args.boards))
            load = {"concurrency": args.concurrency, "seconds": args.seconds}
            direct = asyncio.run(_straight_to_postgres(info, project, **load))
            pids = stack.supervisor.pids()
            meter = CpuMeter({"load": None, **{name: pids[name] for name in ("gateway", "board", "user")}})
            routed, cpu = asyncio.run(
                _through_gateway(info, token, project, args.boards, **load, meter=meter)
            )
    out = sys.stdout
    out.write(
        f"GET /api/boards/project/{{id}}: {args.boards} boards (custom fields, 2 participants each), "
        f"concurrency {args.concurrency}, {args.seconds:g} s each, after a warm-up\n"
    )
    out.write(f"{'':<44}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}\n")
    for name, result in (
        ("(a) the route's SQL straight on Postgres", direct),
        ("(b) the route through the gateway", routed),
    ):
        out.write(
            f"{name:<44}{result.requests_per_second:>9.0f}{result.p50_ms:>9.2f}"
            f"{result.p95_ms:>9.2f}{result.p99_ms:>9.2f}\n"
        )
    out.write(
        f"(b)/(a) requests/s: {routed.requests_per_second / direct.requests_per_second * 100:.0f} %   "
        f"p95 (b)/(a): {routed.p95_ms / direct.p95_ms:.1f}x\n"
        "CPU per request in (b), us (all threads; Postgres and Redis not counted): "
        + ", ".join(f"{name} {used:.0f}" for name, used in cpu.items())
        + "\n"
    )


if __name__ == "__main__":
    main()
