"""Notifications to the noti service through an outbox.

Why an outbox: a notification must go out exactly when its change is committed. A servicer therefore
writes it as an ``outbox`` row in the change's own transaction (:meth:`Notifier.enqueue`) and pokes the
notifier after the commit (:meth:`Notifier.poke`). A background task then delivers the rows to noti's
internal ``CreateNotifications`` and deletes what was delivered. A rolled-back change leaves no row, and
a row whose delivery fails (noti down, a crash before the delete) stays and is retried with backoff, also
by the next process to start.

Delivery is at least once; noti makes it exactly once per target: every event of a row carries the row's
key as its idempotency key, and noti stores one notification per (key, target). Several replicas may
deliver at the same time: each claims rows with ``SELECT ... FOR UPDATE SKIP LOCKED``, so a row is
delivered by one of them while the others take the next rows.

Who is told what: BOARD_ASSIGNED to a new assignee, BOARD_PARTICIPANT_ADDED to new participants,
BOARD_UPDATED (with the changes) and BOARD_COMMENT_ADDED to the board's assignee and participants. The
actor is never among the targets and each target gets an event once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import json_format
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from wealist.noti.v1 import internal_pb2, internal_pb2_grpc

from services.board.context import BoardContext
from services.board.models import Board, Outbox, Project

BOARD_ASSIGNED = "BOARD_ASSIGNED"
BOARD_PARTICIPANT_ADDED = "BOARD_PARTICIPANT_ADDED"
BOARD_UPDATED = "BOARD_UPDATED"
BOARD_COMMENT_ADDED = "BOARD_COMMENT_ADDED"
RESOURCE_BOARD = "board"
OUTBOX_KIND = "noti.notifications"

# Rows claimed per transaction; each row is one CreateNotifications call (at most 51 events).
BATCH = 20
DELIVERY_TIMEOUT_SECONDS = 10.0
# With nothing to do, look for rows another replica left behind (it crashed, say) this often.
SWEEP_SECONDS = 30.0
# Backoff after a failed delivery: 0.5 s doubling up to a minute.
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 60.0
# Answers that a retry cannot change: the row is dropped (and logged) instead of blocking the queue.
PERMANENT = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION})

log = logging.getLogger(__name__)


def recipients(actor_id: uuid.UUID, *groups: Iterable[uuid.UUID | None]) -> list[uuid.UUID]:
    """The users of ``groups``, each once, in order, without the actor and without blanks."""
    seen: dict[uuid.UUID, None] = {}
    for group in groups:
        for user in group:
            if user is not None and user.int != 0 and user != actor_id:
                seen.setdefault(user, None)
    return list(seen)


class Notifier:
    """Writes notifications into the outbox and delivers the outbox to noti in the background."""

    def __init__(self, ctx: BoardContext) -> None:
        self.ctx = ctx
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def enqueue(
        self,
        session: AsyncSession,
        *,
        event_type: str,
        actor_id: uuid.UUID,
        targets: Iterable[uuid.UUID | None],
        board: Board,
        project: Project,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Add one event for ``targets`` (the actor and repeats removed) to the caller's transaction.

        ``metadata`` is added to the {projectId, projectName} every board notification carries. Nothing
        is written when no one is left to tell. Call :meth:`poke` once the transaction is committed.
        """
        people = recipients(actor_id, targets)
        if not people:
            return
        details: dict[str, Any] = {"projectId": str(project.id), "projectName": project.name}
        details.update(metadata or {})
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        events = [
            {
                "type": event_type,
                "actorId": str(actor_id),
                "targetUserId": str(target),
                "workspaceId": str(project.workspace_id),
                "resourceType": RESOURCE_BOARD,
                "resourceId": str(board.id),
                "resourceName": board.title,
                "metadata": details,
                "occurredAt": now,
            }
            for target in people
        ]
        session.add(Outbox(key=f"board:{uuid.uuid4()}", kind=OUTBOX_KIND, payload={"events": events}))

    def poke(self) -> None:
        """Deliver soon: called after a transaction that enqueued something has committed."""
        self._wake.set()

    async def start(self) -> None:
        """Start the delivery task; it first delivers whatever an earlier process left in the outbox."""
        if self._task is None:
            self._wake.set()
            self._task = asyncio.create_task(self._run(), name="board-notifier")

    async def close(self) -> None:
        """Stop the delivery task (rows not yet delivered stay for the next start)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                delivered_all = await self.deliver()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database may be briefly away; the rows are still there for the next pass.
                log.exception("delivering board notifications failed")
                delivered_all = False
            if delivered_all:
                failures = 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), SWEEP_SECONDS)
            else:
                failures += 1
                # Pokes are ignored while backing off: noti is not answering, new rows can wait too.
                await asyncio.sleep(min(FIRST_BACKOFF_SECONDS * 2 ** (failures - 1), MAX_BACKOFF_SECONDS))

    async def deliver(self) -> bool:
        """Deliver outbox rows until none is left; False when a delivery failed (retry later)."""
        stub = internal_pb2_grpc.NotificationInternalServiceStub(self.ctx.channels.to("noti"))
        while True:
            async with self.ctx.database.unit_of_work() as session:
                claim = (
                    select(Outbox)
                    .where(col(Outbox.kind) == OUTBOX_KIND)
                    .order_by(col(Outbox.created_at))
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
                rows = (await session.exec(claim)).all()
                for row in rows:
                    if not await self._send(stub, row):
                        row.attempts += 1
                        session.add(row)
                        return False
                    await session.delete(row)
            if len(rows) < BATCH:
                return True

    @staticmethod
    async def _send(stub: internal_pb2_grpc.NotificationInternalServiceAsyncStub, row: Outbox) -> bool:
        """One row to noti; True when it is done with (delivered, or refused for good)."""
        request = internal_pb2.CreateNotificationsRequest()
        for event in row.payload.get("events", []):
            message = json_format.ParseDict(event, request.events.add(), ignore_unknown_fields=True)
            message.idempotency_key = row.key
        if not request.events:
            return True
        try:
            await stub.CreateNotifications(request, timeout=DELIVERY_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            if error.code() in PERMANENT:
                log.error("noti refused outbox row %s for good: %s", row.key, error.details())
                return True
            log.warning("noti did not take outbox row %s: %s", row.key, error.code().name)
            return False
        return True
