"""Board events to the project's sockets, across replicas, and who is looking at a project.

Publishing: after a change is committed, :func:`publish` sends the event to the Redis channel
``kanban:project:{projectId}``. Nothing is delivered locally on the side: the publishing replica hears
its own event back from Redis like every other replica, which is what makes delivery exactly once per
socket (the original also pushed to its own sockets directly, so they got every event twice).

Fan-out: every replica holds ONE Redis pub/sub connection (the runtime's :class:`mesh.ChannelHub`,
wrapped by :class:`ProjectHub`), subscribed to the channels of the projects that have at least one socket
on it. A reader task parses each message once and offers the frame to each local socket's bounded queue;
the last socket of a project to leave unsubscribes the channel. A new socket waits until Redis has
confirmed the SUBSCRIBE before it counts as open, so an event published after that cannot slip past it.
A socket that falls behind is closed with RESOURCE_EXHAUSTED, and the open sockets are closed with
UNAVAILABLE when the pub/sub connection breaks (events may have been missed); the client reconnects and
refetches. The hub's guarantees are spelled out in ``mesh/_pubsub.py``.

Presence counts sockets, not users: ``online:project:{projectId}`` is a sorted set whose members are
``{userId}:{socketId}`` and whose scores are expiry times (epoch seconds). A socket refreshes its entry on
every ping and on its own timer, and removes it when it closes; the entries of a replica that crashed
simply expire, since readers drop every member whose score has passed.

Access is checked when a socket opens, before every event it is sent, and again on its presence timer.
An event goes out only once the user's workspace membership was confirmed for it (the shared membership
cache, which the user service clears on every change, or the user service itself; when neither answers,
the socket ends with UNAVAILABLE rather than send unconfirmed). And when the user service signals a
change of the workspace's memberships, its sockets on every replica check again at once, so a removed
member's socket ends with NOT_FOUND right away, idle or not; the timer still catches a deleted project
within a third of the presence TTL.

WatchProject is declared without side effects, so the operator identity (``debug``) may call it: its
socket gets the events and pongs but is never present (no entry is written, refreshed or removed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import redis.asyncio as aioredis
from google.protobuf import json_format
from prometheus_client import CollectorRegistry
from wealist.board.v1 import events_pb2, events_pb2_grpc

from mesh import (
    ChannelHub,
    Context,
    MembershipChange,
    NotFound,
    Subscriber,
    Unavailable,
    caller_id,
    parse_uuid,
)
from services.board.access import by_operator, see_project
from services.board.context import BoardContext

log = logging.getLogger("wealist.board.events")

# ChannelHub and Subscriber live in the runtime now; they stay importable from here.
__all__ = [
    "BOARD_CREATED",
    "BOARD_DELETED",
    "BOARD_MOVED",
    "BOARD_UPDATED",
    "OVERFLOW_MESSAGE",
    "PING",
    "PONG",
    "RETRY_SECONDS",
    "SUBSCRIBE_CONFIRM_SECONDS",
    "BoardEventServicer",
    "ChannelHub",
    "Context",
    "Delivery",
    "Presence",
    "ProjectHub",
    "Subscriber",
    "event_frame",
    "presence_key",
    "project_channel",
    "publish",
]

BOARD_CREATED = "BOARD_CREATED"
BOARD_UPDATED = "BOARD_UPDATED"
BOARD_MOVED = "BOARD_MOVED"
BOARD_DELETED = "BOARD_DELETED"
PONG = "pong"
PING = "ping"

# Pause before reading again after the pub/sub connection failed (redis-py reconnects and resubscribes).
RETRY_SECONDS = 0.5
# How long a new socket waits for Redis to confirm its project's SUBSCRIBE before it goes on anyway.
SUBSCRIBE_CONFIRM_SECONDS = 5.0
OVERFLOW_MESSAGE = "the socket fell behind; reconnect and refetch the board"


def project_channel(project_id: uuid.UUID | str) -> str:
    """The pub/sub channel of a project's board events."""
    return f"kanban:project:{project_id}"


def presence_key(project_id: uuid.UUID | str) -> str:
    """The sorted set of a project's open sockets (``{userId}:{socketId}`` → expiry epoch seconds)."""
    return f"online:project:{project_id}"


async def publish(
    redis: aioredis.Redis,
    project_id: uuid.UUID,
    event_type: str,
    payload: dict[str, Any],
    *,
    board_id: uuid.UUID,
) -> None:
    """Send one event to every socket of the project (call it after the change is committed)."""
    frame = {"type": event_type, "payload": payload, "boardId": str(board_id)}
    await redis.publish(project_channel(project_id), json.dumps(frame, separators=(",", ":")))


@dataclass(slots=True)
class Delivery:
    """One frame for a replica's sockets of a project, with the membership generation they check it by.

    Before an event goes out, a socket checks that the workspace's memberships did not change since it
    last confirmed its user's (:meth:`BoardEventServicer._cleared`). The generation is read once per
    event and replica, by the first socket to send it, and shared by the others: having been read after
    the event arrived, it reflects every change signalled before the event was published, which is all
    any of them needs. So an event costs one Redis read per replica, however many sockets get it.
    """

    frame: events_pb2.WatchProjectResponse
    generation: asyncio.Future[str] | None = None


def event_frame(data: bytes | str) -> Delivery:
    """The socket frame of one published event (parsed once per replica, shared by its sockets)."""
    body = json.loads(data)
    frame = events_pb2.WatchProjectResponse(type=str(body["type"]))
    if "payload" in body:
        json_format.ParseDict(body["payload"], frame.payload)
    if body.get("boardId") is not None:
        frame.board_id = str(body["boardId"])
    return Delivery(frame)


# --- fan-out ---------------------------------------------------------------------------------------------


class ProjectHub:
    """The board service's hub: sockets subscribe to their project's channel, frames are socket frames."""

    def __init__(self, ctx: BoardContext, *, registry: CollectorRegistry | None = None) -> None:
        self._hub: ChannelHub[Delivery] = ChannelHub(
            ctx.redis,
            name="board",
            decode=event_frame,
            queue_size=ctx.settings.socket_queue_size,
            metrics="board_socket",
            registry=registry,
            listeners="sockets",
            overflow_message=OVERFLOW_MESSAGE,
            confirm_seconds=SUBSCRIBE_CONFIRM_SECONDS,
            retry_seconds=RETRY_SECONDS,
        )

    @property
    def subscriber_count(self) -> int:
        """Open project sockets on this replica."""
        return self._hub.subscriber_count

    async def start(self) -> None:
        """Open the replica's pub/sub connection."""
        await self._hub.start()

    async def close(self) -> None:
        """Close it (at shutdown)."""
        await self._hub.close()

    def watch(self, project_id: uuid.UUID) -> contextlib.AbstractAsyncContextManager[Subscriber[Delivery]]:
        """A socket's subscription to the project's events, live once the block starts."""
        return self._hub.subscribe(project_channel(project_id))


# --- presence -------------------------------------------------------------------------------------------


# Adds or refreshes one socket's entry, then lets the key expire with its latest entry: never earlier
# (a replica with a shorter TTL must not drop another replica's live entries), never much later (a project
# nobody looks at leaves no key behind). A script, as Redis 6 has no EXPIRE ... GT.
_REFRESH = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local latest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(latest[2])))
"""


class Presence:
    """Who has a socket open on a project, one sorted-set member per socket, expiring by score."""

    def __init__(self, redis: aioredis.Redis, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._refresh = redis.register_script(_REFRESH)
        self.ttl_seconds = ttl_seconds

    @staticmethod
    def member(user_id: uuid.UUID, socket_id: str) -> str:
        """The sorted-set member of one socket."""
        return f"{user_id}:{socket_id}"

    async def refresh(self, project_id: uuid.UUID, user_id: uuid.UUID, socket_id: str) -> None:
        """Mark the socket online for another TTL (adds it when it is not there)."""
        expiry = time.time() + self.ttl_seconds
        await self._refresh(keys=[presence_key(project_id)], args=[expiry, self.member(user_id, socket_id)])

    async def leave(self, project_id: uuid.UUID, user_id: uuid.UUID, socket_id: str) -> None:
        """Take the socket out."""
        await self._redis.zrem(presence_key(project_id), self.member(user_id, socket_id))

    async def online(self, project_id: uuid.UUID) -> list[str]:
        """The users with at least one live socket on the project, each once, sorted."""
        key = presence_key(project_id)
        now = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zrangebyscore(key, now, "+inf")
            _, members = await pipe.execute()
        users = {
            (member.decode() if isinstance(member, bytes) else str(member)).split(":", 1)[0]
            for member in members
        }
        return sorted(users)


# --- the API --------------------------------------------------------------------------------------------


class BoardEventServicer(events_pb2_grpc.BoardEventServiceServicer):
    """The project socket and the online-users list."""

    def __init__(self, ctx: BoardContext, hub: ProjectHub) -> None:
        self.ctx = ctx
        self.hub = hub
        self.presence = Presence(ctx.redis, ttl_seconds=ctx.settings.presence_ttl_seconds)
        self._leaving: set[asyncio.Task[None]] = set()
        # Per workspace, the wake-up of each open socket of its projects on this replica.
        self._watching: dict[uuid.UUID, set[asyncio.Event]] = {}

    async def _see(self, project_id: uuid.UUID, user_id: uuid.UUID) -> uuid.UUID:
        """NOT_FOUND unless the user sees the project; the project's workspace."""
        async with self.ctx.database.unit_of_work() as session:
            seen = await see_project(session, self.ctx.directory, project_id, user_id)
        return seen.project.workspace_id

    async def _cleared(
        self, delivery: Delivery, workspace_id: uuid.UUID, user_id: uuid.UUID, confirmed: str | None
    ) -> str:
        """Check before an event goes out that the user is still a member of the workspace; NOT_FOUND
        otherwise. ``confirmed`` is the membership generation the socket last confirmed its user under;
        returns the one it holds now.

        Unchanged since (see :class:`Delivery`), the event goes out at once; otherwise the membership
        is looked up again (the user service cleared the cache with the change, so the answer is the
        new one). When neither Redis nor the user service answers, UNAVAILABLE: nothing goes out
        unconfirmed.
        """
        if delivery.generation is None:
            delivery.generation = asyncio.ensure_future(self.ctx.directory.generation(workspace_id))
            # Its error is read even when every socket that wanted it has gone meanwhile.
            delivery.generation.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            # Shielded: the socket that started the read may go away; the others still want it.
            now: str | None = await asyncio.shield(delivery.generation)
        except aioredis.RedisError:
            now = None
        if now is not None and now == confirmed:
            return now
        role, generation = await self.ctx.directory.confirm(workspace_id, user_id)
        if role is None:
            raise NotFound("Project not found")
        return generation

    def membership_changed(self, change: MembershipChange) -> None:
        """The workspace's memberships changed: its sockets here check access now, not at their next round."""
        for wake in self._watching.get(change.workspace_id, ()):
            wake.set()

    @contextlib.contextmanager
    def _watch(self, workspace_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """A socket's wake-up for membership changes of the workspace, registered while it is open."""
        wake = asyncio.Event()
        self._watching.setdefault(workspace_id, set()).add(wake)
        try:
            yield wake
        finally:
            watching = self._watching.get(workspace_id)
            if watching is not None:
                watching.discard(wake)
                if not watching:
                    del self._watching[workspace_id]

    async def WatchProject(
        self, request_iterator: AsyncIterator[events_pb2.WatchProjectRequest], context: Context
    ) -> AsyncIterator[events_pb2.WatchProjectResponse]:
        """The project's events and pongs, until the client goes away.

        The socket's life: the gateway's opening message names the project; the caller must see it
        (NOT_FOUND otherwise, so the socket closes with 4404). Then the socket is subscribed and present,
        and three things run until it ends: frames from the hub go out (an event only once the caller's
        workspace membership is confirmed), client pings are answered (and refresh presence), and a timer
        refreshes presence and checks that the caller still sees the project (at once when the workspace's
        memberships change). It ends when the client goes away (its request stream ends or the call is
        cancelled), when it falls behind (RESOURCE_EXHAUSTED) or when it may no longer see the project
        (NOT_FOUND).
        """
        requests = aiter(request_iterator)
        opening = await anext(requests, None)
        if opening is None:
            return
        user_id = caller_id()
        project_id = parse_uuid(opening.project_id, field="projectId")
        workspace_id = await self._see(project_id, user_id)
        # An operator's socket watches without being present; None stands for "no presence entry".
        socket_id = None if by_operator() else uuid.uuid4().hex
        with self._watch(workspace_id) as wake:
            async with self.hub.watch(project_id) as socket:
                chores: list[asyncio.Task[None]] = []
                try:
                    try:
                        await self._refresh(project_id, user_id, socket_id)
                    except aioredis.RedisError as error:
                        raise Unavailable(f"presence is unavailable: {error}") from None
                    chores = [
                        asyncio.create_task(self._answer(requests, socket, project_id, user_id, socket_id)),
                        asyncio.create_task(self._keep_alive(socket, wake, project_id, user_id, socket_id)),
                    ]
                    # The generation the user's membership was last confirmed under (none yet).
                    confirmed: str | None = None
                    while (delivery := await socket.get()) is not None:
                        if delivery.frame.type != PONG:
                            confirmed = await self._cleared(delivery, workspace_id, user_id, confirmed)
                        yield delivery.frame
                finally:
                    # A task of its own, shielded: a call cancelled twice still takes its entry out (else it
                    # would linger for one TTL).
                    leaving = asyncio.create_task(self._leave(chores, project_id, user_id, socket_id))
                    self._leaving.add(leaving)
                    leaving.add_done_callback(self._leaving.discard)
                    await asyncio.shield(leaving)

    async def _refresh(self, project_id: uuid.UUID, user_id: uuid.UUID, socket_id: str | None) -> None:
        """Mark the socket present for another TTL (an operator's socket, without an id, never is)."""
        if socket_id is not None:
            await self.presence.refresh(project_id, user_id, socket_id)

    async def _leave(
        self,
        chores: list[asyncio.Task[None]],
        project_id: uuid.UUID,
        user_id: uuid.UUID,
        socket_id: str | None,
    ) -> None:
        """Stop the socket's chores, then take its presence entry out."""
        for chore in chores:
            chore.cancel()
        # Awaited first, so that a refresh in flight cannot put the entry back after it was removed.
        await asyncio.gather(*chores, return_exceptions=True)
        if socket_id is None:
            return
        try:
            await self.presence.leave(project_id, user_id, socket_id)
        except aioredis.RedisError:
            log.warning("could not remove a board socket's presence; it expires", exc_info=True)

    async def _answer(
        self,
        requests: AsyncIterator[events_pb2.WatchProjectRequest],
        socket: Subscriber[Delivery],
        project_id: uuid.UUID,
        user_id: uuid.UUID,
        socket_id: str | None,
    ) -> None:
        """Client frames: a ping is answered with a pong and refreshes presence; others are ignored."""
        try:
            async for request in requests:
                if request.type != PING:
                    continue
                # Refreshed before the pong goes out: a client that got its pong is listed as online.
                try:
                    await self._refresh(project_id, user_id, socket_id)
                except aioredis.RedisError:
                    log.warning("could not refresh a board socket's presence", exc_info=True)
                socket.offer(Delivery(events_pb2.WatchProjectResponse(type=PONG)))
        except grpc.aio.AioRpcError:
            log.warning("a board socket's client frames could not be read", exc_info=True)
        # The client's frames ended (it half-closed or went away): so does the socket.
        socket.end()

    async def _keep_alive(
        self,
        socket: Subscriber[Delivery],
        wake: asyncio.Event,
        project_id: uuid.UUID,
        user_id: uuid.UUID,
        socket_id: str | None,
    ) -> None:
        """Refresh presence every third of its TTL; end the socket once the caller may not see the project.

        A member removed from the workspace (or a deleted project) must not go on receiving its events;
        a membership change of the workspace (``wake``) makes the check happen at once.
        """
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.presence.ttl_seconds / 3)
            wake.clear()
            try:
                await self._see(project_id, user_id)
            except NotFound as gone:
                socket.end(gone)
                return
            except Exception:
                # The user service or the database is down, say: the socket stays; the next round checks
                # again.
                log.warning("could not recheck a board socket's access", exc_info=True)
            try:
                await self._refresh(project_id, user_id, socket_id)
            except aioredis.RedisError:
                log.warning("could not refresh a board socket's presence", exc_info=True)

    async def GetOnlineUsers(
        self, request: events_pb2.GetOnlineUsersRequest, context: Context
    ) -> events_pb2.GetOnlineUsersResponse:
        """The users with a live socket on the project; NOT_FOUND for a caller who may not see it."""
        project_id = parse_uuid(request.project_id, field="projectId")
        await self._see(project_id, caller_id())
        users = await self.presence.online(project_id)
        return events_pb2.GetOnlineUsersResponse(online_users=users, count=len(users))
