"""Accounts over gRPC: protobuf ↔ :mod:`services.user.accounts.service`; no SQL here."""

from __future__ import annotations

import uuid

from sqlmodel.ext.asyncio.session import AsyncSession
from wealist.user.v1 import user_pb2

from mesh import Context, caller_id, close_account, reopen_account, timestamp
from services.user import checks
from services.user.accounts import service
from services.user.api import UserApi
from services.user.members import service as members
from services.user.models import User


def user_message(user: User, *, with_contact: bool = True) -> user_pb2.User:
    """The contract's UserResponse; ``with_contact=False`` leaves out the e-mail and the Google id."""
    return user_pb2.User(
        user_id=str(user.id),
        email=user.email if with_contact else "",
        email_verified=user.email_verified,
        name=user.name,
        google_id=user.google_id if with_contact else None,
        provider=user.provider,
        is_active=user.is_active,
        created_at=timestamp(user.created_at),
        updated_at=timestamp(user.updated_at),
        deleted_at=timestamp(user.deleted_at),
    )


class AccountsServicer(UserApi):
    """The calling user's account, and others' as far as the caller may see them."""

    async def GetMyUser(
        self, request: user_pb2.GetMyUserRequest, context: Context
    ) -> user_pb2.GetMyUserResponse:
        """The calling user's account."""
        user_id = caller_id()
        async with self.database.unit_of_work() as session:
            user = await service.get_or_raise(session, user_id=user_id)
        return user_pb2.GetMyUserResponse(user=user_message(user))

    async def _close_account(self, session: AsyncSession, user_id: uuid.UUID) -> None:
        """The one way an account is closed: soft-deleted, and its tokens refused everywhere but
        RestoreUser.

        The mark goes to Redis before the commit: if Redis fails, nothing is deleted. Should the commit
        fail after it, the account is still active but its tokens reach RestoreUser only, which then
        finds it active and clears the mark.
        """
        await service.delete(session, user_id=user_id)
        await close_account(self.redis, str(user_id))

    async def DeleteMyUser(
        self, request: user_pb2.DeleteMyUserRequest, context: Context
    ) -> user_pb2.DeleteMyUserResponse:
        """Close the caller's account (see ``_close_account``)."""
        user_id = caller_id()
        async with self.database.unit_of_work() as session:
            await self._close_account(session, user_id)
        return user_pb2.DeleteMyUserResponse(message="User deleted successfully")

    async def GetUser(self, request: user_pb2.GetUserRequest, context: Context) -> user_pb2.GetUserResponse:
        """Any active user's account; the e-mail only for the user and those who share a workspace with it.

        (The original showed anyone's e-mail to anyone, and public workspaces list their owners' ids.)
        """
        caller, user_id = caller_id(), checks.parse_user_id(request.user_id)
        async with self.database.unit_of_work() as session:
            user = await service.get_or_raise(session, user_id=user_id)
            shared = await members.shares_workspace(session, user_id=caller, other_id=user_id)
        return user_pb2.GetUserResponse(user=user_message(user, with_contact=shared))

    async def UpdateUser(
        self, request: user_pb2.UpdateUserRequest, context: Context
    ) -> user_pb2.UpdateUserResponse:
        """Update the caller's own account; ``isActive: false`` closes it exactly as DeleteMyUser does.

        (The original soft-deleted the row here without the lock, so the account's tokens kept working and
        refreshing.) ``isActive: true`` changes nothing: a closed account's token reaches RestoreUser only.
        """
        caller, user_id = caller_id(), checks.parse_user_id(request.user_id)
        async with self.database.unit_of_work() as session:
            user = await service.update(
                session,
                caller_id=caller,
                user_id=user_id,
                email=request.email if request.HasField("email") else None,
            )
            if request.HasField("is_active") and not request.is_active:
                await self._close_account(session, user_id)
        return user_pb2.UpdateUserResponse(user=user_message(user))

    async def RestoreUser(
        self, request: user_pb2.RestoreUserRequest, context: Context
    ) -> user_pb2.RestoreUserResponse:
        """Restore the caller's own soft-deleted account, and accept its tokens again."""
        caller, user_id = caller_id(), checks.parse_user_id(request.user_id)
        async with self.database.unit_of_work() as session:
            user = await service.restore(session, caller_id=caller, user_id=user_id)
        # After the commit (and also for an account found active): a failure here leaves the mark, and
        # calling RestoreUser again clears it.
        await reopen_account(self.redis, str(user_id))
        return user_pb2.RestoreUserResponse(user=user_message(user))
