"""Protobuf ↔ domain for the user service; no SQL here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from wealist.user.v1 import internal_pb2, internal_pb2_grpc, user_pb2, user_pb2_grpc

from mesh import Database, current_user
from services.user import service
from services.user.models import User


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def user_message(user: User) -> user_pb2.User:
    """The contract's UserResponse."""
    return user_pb2.User(
        user_id=str(user.id),
        email=user.email,
        name=user.name,
        google_id=user.google_id,
        provider=user.provider,
        is_active=user.is_active,
        created_at=_timestamp(user.created_at),
        updated_at=_timestamp(user.updated_at),
        deleted_at=_timestamp(user.deleted_at),
    )


class UserServicer(user_pb2_grpc.UserServiceServicer):
    """The user API the gateway exposes."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def GetMyUser(
        self, request: user_pb2.GetMyUserRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> user_pb2.GetMyUserResponse:
        """The calling user's account."""
        user_id = service.parse_user_id(current_user().user_id)
        async with self.database.unit_of_work() as session:
            user = await service.get_or_raise(session, user_id=user_id)
        return user_pb2.GetMyUserResponse(user=user_message(user))


class UserInternalServicer(internal_pb2_grpc.UserInternalServiceServicer):
    """What auth calls at login."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def FindOrCreateOAuthUser(
        self, request: internal_pb2.FindOrCreateOAuthUserRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> internal_pb2.FindOrCreateOAuthUserResponse:
        """Find or create the account of a login, with its default profile."""
        async with self.database.unit_of_work() as session:
            user, created = await service.find_or_create_for_login(
                session,
                email=request.email,
                name=request.name,
                provider=request.provider,
                provider_subject=request.provider_subject,
            )
        return internal_pb2.FindOrCreateOAuthUserResponse(
            user_id=str(user.id), created=created, email=user.email, name=user.name
        )

    async def CheckUserExists(
        self, request: internal_pb2.CheckUserExistsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> internal_pb2.CheckUserExistsResponse:
        """Whether an active user with this id exists."""
        user_id = service.parse_user_id(request.user_id)
        async with self.database.unit_of_work() as session:
            found = await service.exists(session, user_id=user_id)
        return internal_pb2.CheckUserExistsResponse(exists=found)
