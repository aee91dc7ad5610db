"""Protobuf ↔ domain for the notification service; no SQL here.

Each method parses its request (ids as UUIDs, named by their JSON field in a 400), runs domain functions
of :mod:`services.noti.service` in one unit of work, and only after the commit touches Redis: the
unread-count versions are bumped, then new notifications are published to their targets' streams.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC

import redis.asyncio as aioredis
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct
from wealist.noti.v1 import internal_pb2, internal_pb2_grpc, noti_pb2, noti_pb2_grpc

from mesh import (
    Context,
    Database,
    InvalidField,
    accept_stream,
    accepts_stream_itself,
    caller_id,
    parse_uuid,
    timestamp,
)
from services.noti import events, service
from services.noti.counts import UnreadCounts
from services.noti.events import Hub
from services.noti.models import Notification

# The header the web client names the current workspace with; the gateway forwards it as metadata.
WORKSPACE_HEADER = "x-workspace-id"


def notification_message(row: Notification) -> noti_pb2.Notification:
    """The contract's Notification."""
    details = Struct()
    details.update(row.details or {})
    return noti_pb2.Notification(
        id=str(row.id),
        type=row.type,
        actor_id=str(row.actor_id),
        target_user_id=str(row.target_user_id),
        workspace_id=str(row.workspace_id),
        resource_type=row.resource_type,
        resource_id=str(row.resource_id),
        resource_name=row.resource_name,
        metadata=details,
        is_read=row.is_read,
        read_at=timestamp(row.read_at),
        created_at=timestamp(row.created_at),
    )


def _workspace(context: Context) -> uuid.UUID | None:
    """The X-Workspace-Id of the call, when the client sent one."""
    for key, value in context.invocation_metadata() or ():
        if key == WORKSPACE_HEADER and isinstance(value, str) and value.strip():
            return parse_uuid(value, field="X-Workspace-Id")
    return None


class NotificationServicer(noti_pb2_grpc.NotificationServiceServicer):
    """The notification API the gateway exposes."""

    def __init__(self, database: Database, counts: UnreadCounts, hub: Hub) -> None:
        self.database = database
        self.counts = counts
        self.hub = hub

    async def ListNotifications(
        self, request: noti_pb2.ListNotificationsRequest, context: Context
    ) -> noti_pb2.ListNotificationsResponse:
        """One page of the caller's notifications, newest first."""
        user_id = caller_id()
        workspace_id = _workspace(context)
        page, limit = service.page_bounds(request.page, request.limit)
        async with self.database.unit_of_work() as session:
            rows, total = await service.list_for_user(
                session,
                user_id=user_id,
                workspace_id=workspace_id,
                unread_only=request.unread_only,
                page=page,
                limit=limit,
            )
            items = [notification_message(row) for row in rows]
        return noti_pb2.ListNotificationsResponse(
            notifications=items, total=total, page=page, limit=limit, has_more=page * limit < total
        )

    async def GetUnreadCount(
        self, request: noti_pb2.GetUnreadCountRequest, context: Context
    ) -> noti_pb2.GetUnreadCountResponse:
        """The caller's unread count, from the cache when it is current."""
        user_id = caller_id()
        workspace_id = _workspace(context)

        async def compute() -> int:
            async with self.database.unit_of_work() as session:
                return await service.count_unread(session, user_id=user_id, workspace_id=workspace_id)

        count = await self.counts.get(user_id, workspace_id, compute)
        return noti_pb2.GetUnreadCountResponse(count=count, workspace_id=str(workspace_id or ""))

    async def MarkNotificationRead(
        self, request: noti_pb2.MarkNotificationReadRequest, context: Context
    ) -> noti_pb2.MarkNotificationReadResponse:
        """Mark one of the caller's notifications read."""
        user_id = caller_id()
        notification_id = parse_uuid(request.notification_id, field="notificationId")
        async with self.database.unit_of_work() as session:
            row = await service.mark_read(session, user_id=user_id, notification_id=notification_id)
            message = notification_message(row)
        await self.counts.invalidate([user_id])
        return noti_pb2.MarkNotificationReadResponse(notification=message)

    async def MarkAllNotificationsRead(
        self, request: noti_pb2.MarkAllNotificationsReadRequest, context: Context
    ) -> noti_pb2.MarkAllNotificationsReadResponse:
        """Mark every unread notification of the caller read (in the header's workspace when given)."""
        user_id = caller_id()
        workspace_id = _workspace(context)
        async with self.database.unit_of_work() as session:
            marked = await service.mark_all_read(session, user_id=user_id, workspace_id=workspace_id)
        if marked:
            await self.counts.invalidate([user_id])
        return noti_pb2.MarkAllNotificationsReadResponse(marked_as_read=marked)

    async def DeleteNotification(
        self, request: noti_pb2.DeleteNotificationRequest, context: Context
    ) -> noti_pb2.DeleteNotificationResponse:
        """Delete one of the caller's notifications."""
        user_id = caller_id()
        notification_id = parse_uuid(request.notification_id, field="notificationId")
        async with self.database.unit_of_work() as session:
            await service.delete(session, user_id=user_id, notification_id=notification_id)
        await self.counts.invalidate([user_id])
        return noti_pb2.DeleteNotificationResponse()

    @accepts_stream_itself
    async def StreamNotifications(
        self, request: noti_pb2.StreamNotificationsRequest, context: Context
    ) -> AsyncIterator[noti_pb2.StreamNotificationsResponse]:
        """The caller's new notifications until the caller goes away (the call is then cancelled).

        The stream is accepted (the gateway's SSE ``connected``) only once the caller's channel is
        subscribed, so a notification created after ``connected`` is never missed. It ends with
        RESOURCE_EXHAUSTED when the client falls behind and UNAVAILABLE when live delivery was
        interrupted; the client reconnects and lists what it missed.
        """
        user_id = caller_id()
        async with self.hub.subscribe(user_id) as subscriber:
            await accept_stream(context)
            while (notification := await subscriber.get()) is not None:
                yield noti_pb2.StreamNotificationsResponse(notification=notification)


def _event(event: internal_pb2.NotificationEvent, prefix: str = "") -> service.NewNotification:
    return service.new_notification(
        type=event.type,
        actor_id=event.actor_id,
        target_user_id=event.target_user_id,
        workspace_id=event.workspace_id,
        resource_type=event.resource_type,
        resource_id=event.resource_id,
        resource_name=event.resource_name,
        details=MessageToDict(event.metadata) if event.HasField("metadata") else None,
        occurred_at=event.occurred_at.ToDatetime(tzinfo=UTC) if event.HasField("occurred_at") else None,
        idempotency_key=event.idempotency_key,
        prefix=prefix,
    )


class NotificationInternalServicer(internal_pb2_grpc.NotificationInternalServiceServicer):
    """Creation of notifications by the other services."""

    def __init__(self, database: Database, counts: UnreadCounts, redis: aioredis.Redis) -> None:
        self.database = database
        self.counts = counts
        self.redis = redis

    async def _create(self, new: Sequence[service.NewNotification]) -> list[internal_pb2.CreateResult]:
        async with self.database.unit_of_work() as session:
            outcomes = await service.create(session, events=new)
            results = [
                internal_pb2.CreateResult(
                    notification=notification_message(outcome.notification) if outcome.notification else None,
                    created=outcome.created,
                )
                for outcome in outcomes
            ]
        await self._announce(result.notification for result in results if result.created)
        return results

    async def _announce(self, created: Iterable[noti_pb2.Notification]) -> None:
        """After the commit: counts first (a client that sees the event and asks gets the new count)."""
        fresh = list(created)
        await self.counts.invalidate(uuid.UUID(item.target_user_id) for item in fresh)
        for item in fresh:
            await events.publish(self.redis, item)

    async def CreateNotification(
        self, request: internal_pb2.CreateNotificationRequest, context: Context
    ) -> internal_pb2.CreateNotificationResponse:
        """Store one notification and push it to its target's streams."""
        if not request.HasField("event"):
            raise InvalidField("event", "is required")
        (result,) = await self._create([_event(request.event)])
        return internal_pb2.CreateNotificationResponse(result=result)

    async def CreateNotifications(
        self, request: internal_pb2.CreateNotificationsRequest, context: Context
    ) -> internal_pb2.CreateNotificationsResponse:
        """Store up to 100 notifications in one transaction and push each to its target's streams."""
        if not 1 <= len(request.events) <= service.MAX_BATCH:
            raise InvalidField("events", f"must hold 1 to {service.MAX_BATCH} events")
        new = [_event(event, prefix=f"events[{index}].") for index, event in enumerate(request.events)]
        results = await self._create(new)
        return internal_pb2.CreateNotificationsResponse(
            results=results, created=sum(1 for result in results if result.created)
        )
