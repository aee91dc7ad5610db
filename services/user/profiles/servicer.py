"""Profiles over gRPC: protobuf ↔ :mod:`services.user.profiles.service`; no SQL here."""

from __future__ import annotations

import uuid

from wealist.user.v1 import user_pb2

from mesh import Context, InvalidField, caller_id, parse_uuid, timestamp
from services.user import checks
from services.user.api import UserApi
from services.user.models import UserProfile
from services.user.profiles import service

# The header the web client names the current workspace with; the gateway forwards it as metadata.
WORKSPACE_HEADER = "x-workspace-id"


def header_workspace(context: Context, fallback: str = "") -> uuid.UUID:
    """The workspace of a ``/api/profiles/me`` call: the X-Workspace-Id header, else the body's field."""
    for key, value in context.invocation_metadata() or ():
        if key == WORKSPACE_HEADER and isinstance(value, str) and value.strip():
            return parse_uuid(value, field="X-Workspace-Id")
    if fallback.strip():
        return parse_uuid(fallback, field="workspaceId")
    raise InvalidField("X-Workspace-Id", "a workspace id header is required")


def profile_message(profile: UserProfile) -> user_pb2.UserProfile:
    """The contract's UserProfileResponse."""
    return user_pb2.UserProfile(
        profile_id=str(profile.id),
        user_id=str(profile.user_id),
        workspace_id=str(profile.workspace_id),
        nick_name=profile.nick_name,
        email=profile.email,
        profile_image_url=profile.profile_image_url,
        created_at=timestamp(profile.created_at),
        updated_at=timestamp(profile.updated_at),
    )


class ProfilesServicer(UserApi):
    """The caller's profiles, and a member's profile as other members see it."""

    async def CreateProfile(
        self, request: user_pb2.CreateProfileRequest, context: Context
    ) -> user_pb2.CreateProfileResponse:
        """Create the caller's profile in a workspace."""
        caller, workspace_id = caller_id(), parse_uuid(request.workspace_id, field="workspaceId")
        async with self.database.unit_of_work() as session:
            profile = await service.create_profile(
                session,
                caller_id=caller,
                workspace_id=workspace_id,
                nick_name=request.nick_name,
                profile_image_url=request.profile_image_url
                if request.HasField("profile_image_url")
                else None,
            )
        return user_pb2.CreateProfileResponse(profile=profile_message(profile))

    async def GetMyProfile(
        self, request: user_pb2.GetMyProfileRequest, context: Context
    ) -> user_pb2.GetMyProfileResponse:
        """The caller's profile in the X-Workspace-Id workspace, else the default one."""
        caller, workspace_id = caller_id(), header_workspace(context)
        async with self.database.unit_of_work() as session:
            profile = await service.get_profile_or_raise(session, workspace_id=workspace_id, user_id=caller)
        return user_pb2.GetMyProfileResponse(profile=profile_message(profile))

    async def ListMyProfiles(
        self, request: user_pb2.ListMyProfilesRequest, context: Context
    ) -> user_pb2.ListMyProfilesResponse:
        """Every profile of the caller."""
        caller = caller_id()
        async with self.database.unit_of_work() as session:
            profiles = await service.list_my_profiles(session, caller_id=caller)
        return user_pb2.ListMyProfilesResponse(profiles=[profile_message(p) for p in profiles])

    async def UpdateMyProfile(
        self, request: user_pb2.UpdateMyProfileRequest, context: Context
    ) -> user_pb2.UpdateMyProfileResponse:
        """Create or update the caller's profile in the X-Workspace-Id workspace."""
        caller, workspace_id = caller_id(), header_workspace(context, request.workspace_id)
        async with self.database.unit_of_work() as session:
            profile = await service.update_my_profile(
                session,
                caller_id=caller,
                workspace_id=workspace_id,
                nick_name=request.nick_name if request.HasField("nick_name") else None,
                profile_image_url=request.profile_image_url
                if request.HasField("profile_image_url")
                else None,
            )
        return user_pb2.UpdateMyProfileResponse(profile=profile_message(profile))

    async def GetWorkspaceUserProfile(
        self, request: user_pb2.GetWorkspaceUserProfileRequest, context: Context
    ) -> user_pb2.GetWorkspaceUserProfileResponse:
        """A member's profile, seen by a member."""
        caller = caller_id()
        workspace_id = parse_uuid(request.workspace_id, field="workspaceId")
        user_id = checks.parse_user_id(request.user_id)
        async with self.database.unit_of_work() as session:
            profile = await service.get_member_profile(
                session, caller_id=caller, workspace_id=workspace_id, user_id=user_id
            )
        return user_pb2.GetWorkspaceUserProfileResponse(profile=profile_message(profile))

    async def DeleteMyWorkspaceProfile(
        self, request: user_pb2.DeleteMyWorkspaceProfileRequest, context: Context
    ) -> user_pb2.DeleteMyWorkspaceProfileResponse:
        """Delete the caller's profile in a workspace."""
        caller, workspace_id = caller_id(), parse_uuid(request.workspace_id, field="workspaceId")
        async with self.database.unit_of_work() as session:
            await service.delete_my_workspace_profile(session, caller_id=caller, workspace_id=workspace_id)
        return user_pb2.DeleteMyWorkspaceProfileResponse(message="Profile deleted successfully")
