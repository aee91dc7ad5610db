"""The project socket and presence, through the real gateway over WebSocket.

Events reach each socket of a project exactly once, on every replica; a ping is answered with a pong;
sockets of people who may not see the project are closed with 4000 + the HTTP status; presence counts
sockets (two tabs of one user), and an entry left by a crashed replica expires by its score.

The cross-replica tests run a second board replica (its own process, with a small socket queue and a short
presence TTL) behind a second gateway (in this process), beside the stack's own pair.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, cast

import httpx
import pytest_asyncio
import redis.asyncio as aioredis
import websockets
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from devstack import StackInfo
from mesh import generation_key, membership_key
from services.board import events
from tests.support import (
    BOARD,
    USER,
    Person,
    Team,
    call,
    extra_service,
    in_process_gateway,
    project,
    remove_from_workspace,
    team,
)

# How long a socket must stay silent after the last expected frame to count as "no duplicate".
QUIET_SECONDS = 1.0
FRAME_SECONDS = 5.0
# The second board replica: a socket queue small enough to overflow on purpose, a TTL short enough to
# watch the presence timer (it refreshes every TTL/3 = 2 s).
REPLICA_QUEUE = 8
REPLICA_TTL = 6
EVENT_TYPES = (events.BOARD_CREATED, events.BOARD_UPDATED, events.BOARD_MOVED, events.BOARD_DELETED)


class BoardSocket:
    """A client of ``/ws/project/{id}`` that collects what the server sends and how the socket closed."""

    def __init__(self, base_url: str, project_id: str, token: str | None) -> None:
        query = f"?token={token}" if token is not None else ""
        self.url = base_url.replace("http", "ws", 1) + f"{BOARD}/ws/project/{project_id}{query}"
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._connection: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BoardSocket:
        self._connection = await websockets.connect(self.url, open_timeout=FRAME_SECONDS)
        self._reader = asyncio.create_task(self._read(self._connection))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _read(self, connection: ClientConnection) -> None:
        try:
            async for text in connection:
                self.frames.put_nowait(json.loads(text))
        except ConnectionClosed:
            pass
        finally:
            self.close_code = connection.close_code
            self.closed.set()

    async def close(self) -> None:
        """Close from the client side (as a browser tab does) and wait until the socket is gone."""
        if self._connection is not None:
            await self._connection.close()
        if self._reader is not None:
            await self._reader

    async def send(self, frame: dict[str, Any]) -> None:
        """One client frame."""
        assert self._connection is not None
        await self._connection.send(json.dumps(frame))

    async def next(self, within: float = FRAME_SECONDS) -> dict[str, Any]:
        """The next frame from the server."""
        return await asyncio.wait_for(self.frames.get(), within)

    async def ping(self) -> None:
        """Ping and wait for the pong: afterwards the socket is subscribed and present."""
        await self.send({"type": "ping"})
        assert await self.next() == {"type": "pong"}

    async def quiet(self, seconds: float = QUIET_SECONDS) -> list[dict[str, Any]]:
        """Whatever else arrives within ``seconds``."""
        await asyncio.sleep(seconds)
        extra = []
        while not self.frames.empty():
            extra.append(self.frames.get_nowait())
        return extra

    async def closed_with(self, within: float = FRAME_SECONDS) -> int | None:
        """Wait until the server closed the socket; its close code."""
        await asyncio.wait_for(self.closed.wait(), within)
        return self.close_code


@pytest_asyncio.fixture
async def rds(stack: StackInfo) -> AsyncIterator[aioredis.Redis]:
    """A client of the stack's Redis (the one the board replicas publish and keep presence in)."""
    client = aioredis.Redis.from_url(stack.redis_url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(scope="module")
async def replica_b(stack: StackInfo) -> AsyncIterator[str]:
    """The base URL of gateway B, whose board calls reach board replica B (not the stack's board)."""
    env = {
        "WEALIST_SOCKET_QUEUE_SIZE": str(REPLICA_QUEUE),
        "WEALIST_PRESENCE_TTL_SECONDS": str(REPLICA_TTL),
    }
    with extra_service(stack, "board", env) as replica:
        async with in_process_gateway(stack, board=replica.addr) as base:
            yield base


async def _project(client: httpx.AsyncClient) -> tuple[Team, str]:
    people = await team(client)
    created = await project(client, people.owner, people.workspace_id, members=(people.alice, people.bob))
    return people, str(created["projectId"])


def _base(client: httpx.AsyncClient) -> str:
    return str(client.base_url).rstrip("/")


async def _publish_all(rds: aioredis.Redis, project_id: str, board_id: uuid.UUID) -> list[str]:
    """The four event types, published straight to Redis as the board service does."""
    pid = uuid.UUID(project_id)
    await events.publish(
        rds, pid, events.BOARD_CREATED, {"boardId": str(board_id), "n": 1}, board_id=board_id
    )
    await events.publish(
        rds, pid, events.BOARD_UPDATED, {"boardId": str(board_id), "n": 2}, board_id=board_id
    )
    moved = {"from": "pending", "to": "in_progress", "field": "stage"}
    await events.publish(rds, pid, events.BOARD_MOVED, moved, board_id=board_id)
    await events.publish(rds, pid, events.BOARD_DELETED, {"boardId": str(board_id)}, board_id=board_id)
    return list(EVENT_TYPES)


async def _online(client: httpx.AsyncClient, project_id: str, who: Person) -> dict[str, Any]:
    reply = await client.get(f"{BOARD}/api/projects/{project_id}/online-users", headers=who.headers)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def _eventually_online(
    client: httpx.AsyncClient, project_id: str, who: Person, expected: list[str]
) -> dict[str, Any]:
    deadline = time.monotonic() + FRAME_SECONDS
    while True:
        body = await _online(client, project_id, who)
        if sorted(body["onlineUsers"]) == sorted(expected) or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.05)


async def _eventually_entries(rds: aioredis.Redis, project_id: str, count: int) -> int:
    """The number of presence entries once it reached ``count`` (or what it is after the wait)."""
    key = events.presence_key(project_id)
    found = -1
    for _ in range(int(FRAME_SECONDS / 0.05)):
        found = int(await rds.zcard(key))
        if found == count:
            break
        await asyncio.sleep(0.05)
    return found


# --- one replica ----------------------------------------------------------------------------------------


async def test_a_ping_is_answered_with_a_pong_and_refreshes_presence(
    client: httpx.AsyncClient, rds: aioredis.Redis
) -> None:
    people, project_id = await _project(client)
    key = events.presence_key(project_id)
    async with BoardSocket(_base(client), project_id, people.alice.token) as board:
        await board.send({"type": "hello"})
        await board.send({"type": "ping"})
        # The unknown frame got no answer: the first frame is the pong.
        assert await board.next() == {"type": "pong"}
        (member,) = cast("list[bytes]", await rds.zrange(key, 0, -1))
        before: float | None = await rds.zscore(key, member)
        await asyncio.sleep(0.05)
        await board.ping()
        after: float | None = await rds.zscore(key, member)
        assert before is not None
        assert after is not None
        assert after > before
        assert await board.quiet(0.3) == []


async def test_events_published_for_the_project_reach_a_members_socket(
    client: httpx.AsyncClient, rds: aioredis.Redis
) -> None:
    people, project_id = await _project(client)
    _, other_project = await _project(client)
    board_id = uuid.uuid4()
    async with BoardSocket(_base(client), project_id, people.bob.token) as board:
        await board.ping()
        # Another project's event is not this socket's.
        await events.publish(
            rds, uuid.UUID(other_project), events.BOARD_CREATED, {"x": 1}, board_id=uuid.uuid4()
        )
        types = await _publish_all(rds, project_id, board_id)
        frames = [await board.next() for _ in types]
        assert [frame["type"] for frame in frames] == types
        assert all(frame["boardId"] == str(board_id) for frame in frames)
        assert frames[0]["payload"]["boardId"] == str(board_id)
        assert frames[2]["payload"] == {"from": "pending", "to": "in_progress", "field": "stage"}
        assert frames[3]["payload"] == {"boardId": str(board_id)}
        assert await board.quiet() == []


async def test_board_changes_through_rest_reach_the_socket(client: httpx.AsyncClient) -> None:
    people, project_id = await _project(client)
    async with BoardSocket(_base(client), project_id, people.alice.token) as board:
        await board.ping()
        created = await call(
            client,
            "POST",
            "/api/boards",
            people.bob,
            status=201,
            json={"projectId": project_id, "title": "Live card", "customFields": {"stage": "pending"}},
        )
        board_id = created["boardId"]
        frame = await board.next()
        assert (frame["type"], frame["boardId"]) == (events.BOARD_CREATED, board_id)
        assert frame["payload"]["title"] == "Live card"
        assert frame["payload"]["boardId"] == board_id

        await call(client, "PUT", f"/api/boards/{board_id}", people.bob, json={"title": "Renamed"})
        frame = await board.next()
        assert (frame["type"], frame["boardId"]) == (events.BOARD_UPDATED, board_id)
        assert frame["payload"]["title"] == "Renamed"

        moved = {"projectId": project_id, "groupByFieldName": "stage", "newFieldValue": "in_progress"}
        await call(client, "PUT", f"/api/boards/{board_id}/move", people.bob, json=moved)
        frame = await board.next()
        assert (frame["type"], frame["boardId"]) == (events.BOARD_MOVED, board_id)
        assert frame["payload"] == {"from": "pending", "to": "in_progress", "field": "stage"}

        await call(client, "DELETE", f"/api/boards/{board_id}", people.bob)
        frame = await board.next()
        assert frame == {"type": events.BOARD_DELETED, "payload": {"boardId": board_id}, "boardId": board_id}
        assert await board.quiet() == []


async def test_sockets_of_people_who_may_not_see_the_project_are_closed(client: httpx.AsyncClient) -> None:
    people, project_id = await _project(client)
    base = _base(client)
    async with BoardSocket(base, project_id, people.outsider.token) as outsider:
        assert await outsider.closed_with() == 4404
        assert (await outsider.next())["error"]["code"] == "NOT_FOUND"
    async with BoardSocket(base, str(uuid.uuid4()), people.alice.token) as unknown:
        assert await unknown.closed_with() == 4404
    async with BoardSocket(base, "not-a-uuid", people.alice.token) as malformed:
        assert await malformed.closed_with() == 4400
    async with BoardSocket(base, project_id, None) as anonymous:
        assert await anonymous.closed_with() == 4401
    async with BoardSocket(base, project_id, "not.a.token") as forged:
        assert await forged.closed_with() == 4401


async def test_presence_counts_sockets_not_users(client: httpx.AsyncClient, rds: aioredis.Redis) -> None:
    people, project_id = await _project(client)
    base = _base(client)
    assert await _online(client, project_id, people.owner) == {"onlineUsers": [], "count": 0}
    first = await BoardSocket(base, project_id, people.alice.token).__aenter__()
    try:
        async with BoardSocket(base, project_id, people.alice.token) as second:
            await first.ping()
            await second.ping()
            # Bare JSON (no envelope), one entry per user however many tabs they have open.
            assert await _online(client, project_id, people.owner) == {
                "onlineUsers": [people.alice.user_id],
                "count": 1,
            }
            await first.close()
            assert await _eventually_entries(rds, project_id, 1) == 1
            # One tab closed, the other still open: still online.
            body = await _online(client, project_id, people.bob)
            assert body == {"onlineUsers": [people.alice.user_id], "count": 1}
        # Both closed: gone.
        body = await _eventually_online(client, project_id, people.owner, [])
        assert body == {"onlineUsers": [], "count": 0}
    finally:
        await first.close()


async def _sample(client: httpx.AsyncClient, url: str, name: str) -> float:
    reply = await client.get(url)
    assert reply.status_code == 200, reply.text
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    raise AssertionError(f"{name} not in {url}")


async def test_open_sockets_are_counted_on_the_metrics(client: httpx.AsyncClient, stack: StackInfo) -> None:
    """The hub's gauges are on the board's /metrics (its registry is the runtime's)."""
    people, project_id = await _project(client)
    url = stack.services["board"].metrics_url
    async with BoardSocket(_base(client), project_id, people.alice.token) as board:
        await board.ping()
        assert await _sample(client, url, "board_socket_subscribers") >= 1
        assert await _sample(client, url, "board_socket_channels") >= 1


async def test_online_users_is_not_found_for_an_outsider_and_bad_ids_are_refused(
    client: httpx.AsyncClient,
) -> None:
    people, project_id = await _project(client)
    path = f"{BOARD}/api/projects/{project_id}/online-users"
    reply = await client.get(path, headers=people.outsider.headers)
    assert reply.status_code == 404, reply.text
    unknown = await client.get(
        f"{BOARD}/api/projects/{uuid.uuid4()}/online-users", headers=people.alice.headers
    )
    assert unknown.status_code == 404, unknown.text
    malformed = await client.get(f"{BOARD}/api/projects/nope/online-users", headers=people.alice.headers)
    assert malformed.status_code == 400, malformed.text
    assert "projectId" in malformed.text
    assert (await client.get(path)).status_code == 401


async def test_an_expired_entry_is_not_listed_and_is_dropped(
    client: httpx.AsyncClient, rds: aioredis.Redis
) -> None:
    """A replica that crashed never removed its sockets' entries: they drop out by their score."""
    people, project_id = await _project(client)
    key = events.presence_key(project_id)
    crashed = f"{people.bob.user_id}:crashed-replica"
    elsewhere = f"{people.alice.user_id}:other-replica"
    await rds.zadd(key, {crashed: time.time() - 1, elsewhere: time.time() + 60})
    async with BoardSocket(_base(client), project_id, people.owner.token) as board:
        await board.ping()
        body = await _online(client, project_id, people.owner)
    assert body == {"onlineUsers": sorted([people.alice.user_id, people.owner.user_id]), "count": 2}
    assert await rds.zscore(key, crashed) is None
    await rds.zrem(key, elsewhere)


# --- two replicas ---------------------------------------------------------------------------------------


async def test_each_socket_gets_each_event_once_across_replicas(
    client: httpx.AsyncClient, rds: aioredis.Redis, replica_b: str
) -> None:
    """Sockets on gateway A → board A and on gateway B → board B; events published by either replica."""
    people, project_id = await _project(client)
    async with (
        httpx.AsyncClient(base_url=replica_b, timeout=15) as via_b,
        BoardSocket(_base(client), project_id, people.alice.token) as on_a,
        BoardSocket(_base(client), project_id, people.bob.token) as also_on_a,
        BoardSocket(replica_b, project_id, people.owner.token) as on_b,
    ):
        sockets = (on_a, also_on_a, on_b)
        for board in sockets:
            await board.ping()
        # Board A publishes the creation, board B the update and the move, Redis directly the deletion:
        # the original sent the publishing replica's sockets everything twice.
        created = await call(
            client,
            "POST",
            "/api/boards",
            people.bob,
            status=201,
            json={"projectId": project_id, "title": "Twice?", "customFields": {"stage": "pending"}},
        )
        board_id = created["boardId"]
        await call(via_b, "PUT", f"/api/boards/{board_id}", people.bob, json={"title": "Once"})
        moved = {"projectId": project_id, "groupByFieldName": "stage", "newFieldValue": "review"}
        await call(via_b, "PUT", f"/api/boards/{board_id}/move", people.bob, json=moved)
        await events.publish(
            rds,
            uuid.UUID(project_id),
            events.BOARD_DELETED,
            {"boardId": board_id},
            board_id=uuid.UUID(board_id),
        )
        for board in sockets:
            frames = [await board.next() for _ in EVENT_TYPES]
            assert [(f["type"], f["boardId"]) for f in frames] == [(t, board_id) for t in EVENT_TYPES]
        # Nothing more on any socket after a quiet period: no duplicates.
        await asyncio.sleep(QUIET_SECONDS)
        for board in sockets:
            assert await board.quiet(0) == []
        # Presence is shared: a user on B is listed by A.
        listed = await _online(client, project_id, people.alice)
        assert sorted(listed["onlineUsers"]) == sorted(
            [people.alice.user_id, people.bob.user_id, people.owner.user_id]
        )


async def test_a_socket_that_falls_behind_is_closed_with_429(
    client: httpx.AsyncClient, rds: aioredis.Redis, replica_b: str
) -> None:
    """A burst far beyond the socket's queue ends it with RESOURCE_EXHAUSTED; a new socket works."""
    people, project_id = await _project(client)
    burst = 40 * REPLICA_QUEUE
    async with BoardSocket(replica_b, project_id, people.alice.token) as board:
        await board.ping()
        frame = json.dumps({"type": events.BOARD_UPDATED, "payload": {"n": 0}, "boardId": str(uuid.uuid4())})
        # One pipeline: the replica's reader gets the burst at once, faster than any socket drains.
        async with rds.pipeline(transaction=False) as pipe:
            for _ in range(burst):
                pipe.publish(events.project_channel(project_id), frame)
            await pipe.execute()
        assert await board.closed_with() == 4429
        received = []
        while not board.frames.empty():
            received.append(board.frames.get_nowait())
        assert received[-1]["error"]["code"] == "STREAM_OVERFLOW"
        assert len(received) - 1 < burst
    # Its presence entry went with it, and the client can come back.
    assert await _eventually_entries(rds, project_id, 0) == 0
    async with BoardSocket(replica_b, project_id, people.alice.token) as again:
        await again.ping()


async def test_presence_is_refreshed_by_the_sockets_timer(
    client: httpx.AsyncClient, rds: aioredis.Redis, replica_b: str
) -> None:
    """Without any ping, a socket's entry is pushed forward every TTL/3 and outlives the first TTL."""
    people, project_id = await _project(client)
    key = events.presence_key(project_id)
    async with BoardSocket(replica_b, project_id, people.alice.token) as board:
        await board.ping()
        entries = await rds.zrange(key, 0, -1, withscores=True)
        assert len(entries) == 1
        member, first = cast("tuple[bytes, float]", tuple(entries[0]))
        assert member.decode().startswith(f"{people.alice.user_id}:")
        assert first <= time.time() + REPLICA_TTL
        await asyncio.sleep(REPLICA_TTL / 3 + 1)
        later: float | None = await rds.zscore(key, member)
        assert later is not None
        assert later > first
        # The TTL the socket started with has passed: still online, thanks to the timer alone.
        await asyncio.sleep(max(0.0, first - time.time()) + 0.5)
        body = await _online(client, project_id, people.owner)
        assert body == {"onlineUsers": [people.alice.user_id], "count": 1}


async def test_a_member_removed_from_the_workspace_loses_the_socket(
    client: httpx.AsyncClient, replica_b: str
) -> None:
    """On a replica of its own too, a removed member's socket ends (at once, on the user service's signal;
    its timer would catch it within TTL/3)."""
    people, project_id = await _project(client)
    async with BoardSocket(replica_b, project_id, people.alice.token) as board:
        await board.ping()
        members = await client.get(
            f"{USER}/api/workspaces/{people.workspace_id}/members", headers=people.owner.headers
        )
        assert members.status_code == 200, members.text
        (alice,) = [m for m in members.json() if m["userId"] == people.alice.user_id]
        removed = await client.delete(
            f"{USER}/api/workspaces/{people.workspace_id}/members/{alice['workspaceMemberId']}",
            headers=people.owner.headers,
        )
        assert removed.status_code == 200, removed.text
        # Checked every TTL/3 (2 s on replica B).
        assert await board.closed_with(REPLICA_TTL / 3 + FRAME_SECONDS) == 4404


async def test_a_removed_members_socket_ends_as_soon_as_the_user_service_signals_it(
    client: httpx.AsyncClient,
) -> None:
    """On the stack's board (timer every 30 s) the socket ends at once: the removal is signalled."""
    people, project_id = await _project(client)
    async with BoardSocket(_base(client), project_id, people.alice.token) as board:
        await board.ping()
        await remove_from_workspace(client, people.owner, people.workspace_id, people.alice)
        assert await board.closed_with(FRAME_SECONDS) == 4404


async def test_no_event_goes_to_a_socket_whose_user_is_no_longer_a_member(
    client: httpx.AsyncClient, rds: aioredis.Redis
) -> None:
    """Each event waits for the user's membership to be confirmed, signal or not.

    After a first event has gone out, Redis is made to hold what a removal leaves there (the
    workspace's membership generation bumped, the user service's fresh answer cached: alice is not a
    member) without the removal's signal on the stream, which would end the socket first; then a second
    event is published.
    """
    people, project_id = await _project(client)
    pid, board_id = uuid.UUID(project_id), uuid.uuid4()
    async with BoardSocket(_base(client), project_id, people.alice.token) as board:
        await board.ping()
        await events.publish(rds, pid, events.BOARD_CREATED, {"boardId": str(board_id)}, board_id=board_id)
        assert (await board.next())["type"] == events.BOARD_CREATED
        async with rds.pipeline(transaction=True) as pipe:
            pipe.incr(generation_key(people.workspace_id))
            pipe.hset(membership_key(people.workspace_id), people.alice.user_id, f"-@{time.time() + 60:.3f}")
            await pipe.execute()
        await events.publish(rds, pid, events.BOARD_UPDATED, {"boardId": str(board_id)}, board_id=board_id)
        assert await board.closed_with() == 4404
        frames = await board.quiet(0)
        assert [frame for frame in frames if "type" in frame] == []
        assert frames[-1]["error"]["code"] == "NOT_FOUND"
