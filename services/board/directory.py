"""What the board service asks the user service: memberships, names and e-mails, workspaces.

Membership answers go through the shared short-lived cache (:class:`mesh.MembershipCache`), which the
user service invalidates on every change; profiles and workspaces are read per call, one batch each.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import grpc
from wealist.user.v1 import internal_pb2, internal_pb2_grpc

from mesh import Channels, Forbidden, MembershipCache, NotFound, Unavailable

# The answer a workspace member gets when the caller is not one: the contract's message.
NOT_WORKSPACE_MEMBER = "You are not a member of this workspace"
LOOKUP_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Person:
    """A user as a project screen shows them: the workspace profile's nickname and e-mail."""

    user_id: uuid.UUID
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class WorkspaceInfo:
    """The workspace fields init-settings shows."""

    workspace_id: uuid.UUID
    name: str
    owner_id: uuid.UUID


class Directory:
    """Lookups in the user service, over its internal gRPC API."""

    def __init__(self, channels: Channels, cache: MembershipCache) -> None:
        self._channels = channels
        self._cache = cache

    def _stub(self) -> internal_pb2_grpc.UserInternalServiceAsyncStub:
        return internal_pb2_grpc.UserInternalServiceStub(self._channels.to("user"))

    async def roles(
        self, workspace_id: uuid.UUID, user_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, str | None]:
        """Each user's role in the workspace (OWNER, ADMIN, MEMBER) or ``None`` for a non-member."""
        return (await self._lookup(workspace_id, user_ids))[0]

    async def confirm(self, workspace_id: uuid.UUID, user_id: uuid.UUID) -> tuple[str | None, str]:
        """The user's role (or ``None``) and the workspace's membership generation the answer holds for:
        while :meth:`generation` still says the same, no membership of the workspace changed."""
        answers, generation = await self._lookup(workspace_id, [user_id])
        return answers[user_id], generation

    async def generation(self, workspace_id: uuid.UUID) -> str:
        """The workspace's membership generation now (see :meth:`confirm`)."""
        return await self._cache.generation(workspace_id)

    async def _lookup(
        self, workspace_id: uuid.UUID, user_ids: Iterable[uuid.UUID]
    ) -> tuple[dict[uuid.UUID, str | None], str]:
        wanted = list(dict.fromkeys(user_ids))
        lookup = await self._cache.get(workspace_id, wanted)
        answers = dict(lookup.answers)
        missing = [user for user in wanted if user not in answers]
        if missing:
            try:
                reply = await self._stub().CheckWorkspaceMemberships(
                    internal_pb2.CheckWorkspaceMembershipsRequest(
                        workspace_id=str(workspace_id), user_ids=[str(u) for u in missing]
                    ),
                    timeout=LOOKUP_TIMEOUT_SECONDS,
                )
            except grpc.aio.AioRpcError as error:
                raise Unavailable(f"the user service did not answer: {error.code().name}") from None
            fresh: dict[uuid.UUID, str | None] = {
                uuid.UUID(m.user_id): (m.role or "MEMBER") if m.is_member else None for m in reply.memberships
            }
            await self._cache.put(workspace_id, fresh, generation=lookup.generation)
            answers.update(fresh)
        return {user: answers.get(user) for user in wanted}, lookup.generation

    async def role(self, workspace_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
        """One user's role in the workspace, or ``None``."""
        return (await self.roles(workspace_id, [user_id]))[user_id]

    async def require_member(self, workspace_id: uuid.UUID, user_id: uuid.UUID) -> str:
        """The user's role; FORBIDDEN when they are not a member of the workspace."""
        role = await self.role(workspace_id, user_id)
        if role is None:
            raise Forbidden(NOT_WORKSPACE_MEMBER)
        return role

    async def people(self, workspace_id: uuid.UUID, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Person]:
        """Names and e-mails from the users' workspace profiles; unknown users are left out.

        A lookup failure leaves the names out rather than failing the listing (as the contract does).
        """
        wanted = [str(u) for u in dict.fromkeys(user_ids)]
        if not wanted:
            return {}
        try:
            reply = await self._stub().GetProfiles(
                internal_pb2.GetProfilesRequest(workspace_id=str(workspace_id), user_ids=wanted),
                timeout=LOOKUP_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError:
            return {}
        return {
            uuid.UUID(p.user_id): Person(uuid.UUID(p.user_id), p.nick_name, p.email) for p in reply.profiles
        }

    async def workspace(self, workspace_id: uuid.UUID) -> WorkspaceInfo:
        """The workspace's name and owner; NOT_FOUND when it does not exist (or was deleted)."""
        try:
            reply = await self._stub().GetWorkspace(
                internal_pb2.UserInternalServiceGetWorkspaceRequest(workspace_id=str(workspace_id)),
                timeout=LOOKUP_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                raise NotFound("Workspace not found") from None
            raise Unavailable(f"the user service did not answer: {error.code().name}") from None
        info = reply.workspace
        return WorkspaceInfo(workspace_id, info.workspace_name, uuid.UUID(info.owner_id))
