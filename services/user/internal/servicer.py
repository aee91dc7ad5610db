"""The internal lookups over gRPC: protobuf ↔ the nouns' domain functions; no SQL here.

What auth calls at login, and what board, chat, noti, storage and ops ask about users, memberships,
profiles and workspaces (batch forms: one query each).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from wealist.user.v1 import internal_pb2, internal_pb2_grpc

from mesh import Context, Database, parse_uuid, timestamp
from services.user import checks
from services.user.accounts import service as accounts
from services.user.members import service as members
from services.user.models import ROLE_OWNER, UserProfile
from services.user.profiles import service as profiles
from services.user.workspaces import service as workspaces


def _ids(values: Sequence[str], *, field: str) -> list[uuid.UUID]:
    return [parse_uuid(value, field=field) for value in values]


def internal_profile(profile: UserProfile) -> internal_pb2.Profile:
    """A profile as other services read it."""
    return internal_pb2.Profile(
        profile_id=str(profile.id),
        user_id=str(profile.user_id),
        workspace_id=str(profile.workspace_id),
        nick_name=profile.nick_name,
        email=profile.email,
        profile_image_url=profile.profile_image_url or "",
    )


class UserInternalServicer(internal_pb2_grpc.UserInternalServiceServicer):
    """What auth calls at login, and the lookups board, chat, noti, storage and ops make."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def FindOrCreateOAuthUser(
        self, request: internal_pb2.FindOrCreateOAuthUserRequest, context: Context
    ) -> internal_pb2.FindOrCreateOAuthUserResponse:
        """Find or create the account of a login, with its default profile."""
        async with self.database.unit_of_work() as session:
            user, created = await accounts.find_or_create_for_login(
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
        self, request: internal_pb2.CheckUserExistsRequest, context: Context
    ) -> internal_pb2.CheckUserExistsResponse:
        """Whether an active user with this id exists."""
        user_id = checks.parse_user_id(request.user_id)
        async with self.database.unit_of_work() as session:
            found = await accounts.exists(session, user_id=user_id)
        return internal_pb2.CheckUserExistsResponse(exists=found)

    async def _memberships(
        self, workspace: str, users: Sequence[str]
    ) -> list[internal_pb2.WorkspaceMembership]:
        workspace_id = parse_uuid(workspace, field="workspaceId")
        user_ids = _ids(users, field="userIds")
        async with self.database.unit_of_work() as session:
            roles = await members.memberships(session, workspace_id=workspace_id, user_ids=user_ids)
        return [
            internal_pb2.WorkspaceMembership(
                user_id=str(user_id),
                is_member=user_id in roles,
                role=roles.get(user_id, ""),
                is_owner=roles.get(user_id) == ROLE_OWNER,
            )
            for user_id in user_ids
        ]

    async def CheckWorkspaceMembership(
        self, request: internal_pb2.CheckWorkspaceMembershipRequest, context: Context
    ) -> internal_pb2.CheckWorkspaceMembershipResponse:
        """One user's membership of a workspace."""
        checks.parse_user_id(request.user_id)
        (membership,) = await self._memberships(request.workspace_id, [request.user_id])
        return internal_pb2.CheckWorkspaceMembershipResponse(membership=membership)

    async def CheckWorkspaceMemberships(
        self, request: internal_pb2.CheckWorkspaceMembershipsRequest, context: Context
    ) -> internal_pb2.CheckWorkspaceMembershipsResponse:
        """Many users' memberships of a workspace, in request order."""
        found = await self._memberships(request.workspace_id, request.user_ids)
        return internal_pb2.CheckWorkspaceMembershipsResponse(memberships=found)

    async def GetUsers(
        self, request: internal_pb2.GetUsersRequest, context: Context
    ) -> internal_pb2.GetUsersResponse:
        """Active users by id."""
        user_ids = _ids(request.user_ids, field="userIds")
        async with self.database.unit_of_work() as session:
            users = await accounts.list_by_ids(session, user_ids=user_ids)
        return internal_pb2.GetUsersResponse(
            users=[
                internal_pb2.UserSummary(user_id=str(u.id), email=u.email, name=u.name, provider=u.provider)
                for u in users
            ]
        )

    async def GetProfile(
        self, request: internal_pb2.GetProfileRequest, context: Context
    ) -> internal_pb2.GetProfileResponse:
        """A user's workspace profile, else its default one."""
        workspace_id = parse_uuid(request.workspace_id, field="workspaceId")
        user_id = checks.parse_user_id(request.user_id)
        async with self.database.unit_of_work() as session:
            profile = await profiles.get_profile_or_raise(session, workspace_id=workspace_id, user_id=user_id)
        return internal_pb2.GetProfileResponse(profile=internal_profile(profile))

    async def GetProfiles(
        self, request: internal_pb2.GetProfilesRequest, context: Context
    ) -> internal_pb2.GetProfilesResponse:
        """Many users' profiles in one workspace, in request order."""
        workspace_id = parse_uuid(request.workspace_id, field="workspaceId")
        user_ids = _ids(request.user_ids, field="userIds")
        async with self.database.unit_of_work() as session:
            found = await profiles.profiles_for(session, workspace_id=workspace_id, user_ids=user_ids)
        return internal_pb2.GetProfilesResponse(
            profiles=[
                internal_profile(found[user_id]) for user_id in dict.fromkeys(user_ids) if user_id in found
            ]
        )

    async def GetWorkspace(
        self, request: internal_pb2.UserInternalServiceGetWorkspaceRequest, context: Context
    ) -> internal_pb2.UserInternalServiceGetWorkspaceResponse:
        """A live workspace."""
        workspace_id = parse_uuid(request.workspace_id, field="workspaceId")
        async with self.database.unit_of_work() as session:
            workspace = await workspaces.get_workspace_or_raise(session, workspace_id=workspace_id)
        return internal_pb2.UserInternalServiceGetWorkspaceResponse(
            workspace=internal_pb2.WorkspaceInfo(
                workspace_id=str(workspace.id),
                owner_id=str(workspace.owner_id),
                workspace_name=workspace.workspace_name,
                workspace_description=workspace.workspace_description or "",
                is_public=workspace.is_public,
                need_approved=workspace.need_approved,
                only_owner_can_invite=workspace.only_owner_can_invite,
                created_at=timestamp(workspace.created_at),
            )
        )
