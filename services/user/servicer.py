"""Protobuf ↔ domain for the user service; no SQL here.

Each method parses its request (ids as UUIDs, named by their JSON field in a 400), calls one domain
function of :mod:`services.user.service` in a unit of work, and maps the result to the contract's DTO.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import redis.asyncio as aioredis
from sqlmodel.ext.asyncio.session import AsyncSession
from wealist.user.v1 import internal_pb2, internal_pb2_grpc, user_pb2, user_pb2_grpc

from mesh import (
    Context,
    Database,
    InvalidField,
    ObjectStore,
    caller_id,
    close_account,
    invalidate_memberships,
    parse_uuid,
    reopen_account,
    timestamp,
)
from services.user import service
from services.user.models import (
    ROLE_OWNER,
    Attachment,
    User,
    UserProfile,
    Workspace,
)

# The header the web client names the current workspace with; the gateway forwards it as metadata.
WORKSPACE_HEADER = "x-workspace-id"


def _ids(values: Sequence[str], *, field: str) -> list[uuid.UUID]:
    return [parse_uuid(value, field=field) for value in values]


def _header_workspace(context: Context, fallback: str = "") -> uuid.UUID:
    """The workspace of a ``/api/profiles/me`` call: the X-Workspace-Id header, else the body's field."""
    for key, value in context.invocation_metadata() or ():
        if key == WORKSPACE_HEADER and isinstance(value, str) and value.strip():
            return parse_uuid(value, field="X-Workspace-Id")
    if fallback.strip():
        return parse_uuid(fallback, field="workspaceId")
    raise InvalidField("X-Workspace-Id", "a workspace id header is required")


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


def workspace_message(workspace: Workspace, *, member: bool = True) -> user_pb2.Workspace:
    """The contract's WorkspaceResponse; for a non-member (``member=False``) without the owner's id.

    A public workspace is seen by everybody, but who owns it is for its members: the owner ids of the
    public search were a directory of users to look up.
    """
    return user_pb2.Workspace(
        workspace_id=str(workspace.id),
        owner_id=str(workspace.owner_id) if member else "",
        workspace_name=workspace.workspace_name,
        workspace_description=workspace.workspace_description,
        is_public=workspace.is_public,
        need_approved=workspace.need_approved,
        only_owner_can_invite=workspace.only_owner_can_invite,
        is_active=workspace.is_active,
        created_at=timestamp(workspace.created_at),
        deleted_at=timestamp(workspace.deleted_at),
    )


def settings_message(workspace: Workspace) -> user_pb2.WorkspaceSettings:
    """The contract's WorkspaceSettingsResponse (requiresApproval is needApproved)."""
    return user_pb2.WorkspaceSettings(
        workspace_id=str(workspace.id),
        workspace_name=workspace.workspace_name,
        workspace_description=workspace.workspace_description or "",
        is_public=workspace.is_public,
        requires_approval=workspace.need_approved,
        only_owner_can_invite=workspace.only_owner_can_invite,
    )


def member_message(view: service.MemberView) -> user_pb2.WorkspaceMember:
    """The contract's WorkspaceMemberResponse."""
    member = view.member
    return user_pb2.WorkspaceMember(
        workspace_member_id=str(member.id),
        workspace_id=str(member.workspace_id),
        user_id=str(member.user_id),
        role_name=member.role_name,
        is_default=member.is_default,
        is_active=member.is_active,
        joined_at=timestamp(member.joined_at),
        updated_at=timestamp(member.updated_at),
        user_email=view.email,
        nick_name=view.nick_name,
        profile_image_url=view.profile_image_url,
    )


def join_request_message(view: service.JoinRequestView) -> user_pb2.JoinRequest:
    """The contract's JoinRequestResponse, with the nickname the web client expects."""
    request = view.request
    return user_pb2.JoinRequest(
        join_request_id=str(request.id),
        workspace_id=str(request.workspace_id),
        user_id=str(request.user_id),
        status=request.status,
        requested_at=timestamp(request.requested_at),
        updated_at=timestamp(request.updated_at),
        user_email=view.email,
        nick_name=view.nick_name,
        workspace_name=view.workspace_name,
    )


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


def attachment_message(attachment: Attachment) -> user_pb2.Attachment:
    """The contract's AttachmentResponse."""
    return user_pb2.Attachment(
        attachment_id=str(attachment.id),
        entity_type=attachment.entity_type,
        entity_id=str(attachment.entity_id) if attachment.entity_id else None,
        status=attachment.status,
        file_name=attachment.file_name,
        file_url=attachment.file_url,
        file_size=attachment.file_size,
        content_type=attachment.content_type,
        uploaded_by=str(attachment.uploaded_by),
        expires_at=timestamp(attachment.expires_at),
        created_at=timestamp(attachment.created_at),
    )


class UserServicer(user_pb2_grpc.UserServiceServicer):
    """The user API the gateway exposes."""

    def __init__(self, database: Database, store: ObjectStore, redis: aioredis.Redis) -> None:
        self.database = database
        self.store = store
        self.redis = redis

    async def _memberships_changed(
        self, workspace_id: uuid.UUID, *, removed: Sequence[uuid.UUID] = ()
    ) -> None:
        """After a committed membership change: other services' cached answers for it are stale, and
        those that keep state per member (board's project memberships) hear who was ``removed``."""
        await invalidate_memberships(self.redis, workspace_id, removed=removed)

    # --- users ----------------------------------------------------------------------------------------

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
        caller, user_id = caller_id(), service.parse_user_id(request.user_id)
        async with self.database.unit_of_work() as session:
            user = await service.get_or_raise(session, user_id=user_id)
            shared = await service.shares_workspace(session, user_id=caller, other_id=user_id)
        return user_pb2.GetUserResponse(user=user_message(user, with_contact=shared))

    async def UpdateUser(
        self, request: user_pb2.UpdateUserRequest, context: Context
    ) -> user_pb2.UpdateUserResponse:
        """Update the caller's own account; ``isActive: false`` closes it exactly as DeleteMyUser does.

        (The original soft-deleted the row here without the lock, so the account's tokens kept working and
        refreshing.) ``isActive: true`` changes nothing: a closed account's token reaches RestoreUser only.
        """
        caller, user_id = caller_id(), service.parse_user_id(request.user_id)
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
        caller, user_id = caller_id(), service.parse_user_id(request.user_id)
        async with self.database.unit_of_work() as session:
            user = await service.restore(session, caller_id=caller, user_id=user_id)
        # After the commit (and also for an account found active): a failure here leaves the mark, and
        # calling RestoreUser again clears it.
        await reopen_account(self.redis, str(user_id))
        return user_pb2.RestoreUserResponse(user=user_message(user))

    # --- workspaces -----------------------------------------------------------------------------------

    async def CreateWorkspace(
        self, request: user_pb2.CreateWorkspaceRequest, context: Context
    ) -> user_pb2.CreateWorkspaceResponse:
        """Create a workspace owned by the caller."""
        caller = caller_id()
        async with self.database.unit_of_work() as session:
            workspace = await service.create_workspace(
                session,
                caller_id=caller,
                name=request.workspace_name,
                description=request.workspace_description
                if request.HasField("workspace_description")
                else None,
                is_public=request.is_public if request.HasField("is_public") else True,
                need_approved=request.need_approved if request.HasField("need_approved") else True,
                only_owner_can_invite=(
                    request.only_owner_can_invite if request.HasField("only_owner_can_invite") else True
                ),
            )
        return user_pb2.CreateWorkspaceResponse(workspace=workspace_message(workspace))

    async def ListMyWorkspaces(
        self, request: user_pb2.ListMyWorkspacesRequest, context: Context
    ) -> user_pb2.ListMyWorkspacesResponse:
        """The caller's workspaces with its role in each."""
        caller = caller_id()
        async with self.database.unit_of_work() as session:
            mine = await service.list_my_workspaces(session, caller_id=caller)
        return user_pb2.ListMyWorkspacesResponse(
            workspaces=[
                user_pb2.UserWorkspace(
                    workspace_id=str(each.workspace.id),
                    workspace_name=each.workspace.workspace_name,
                    workspace_description=each.workspace.workspace_description or "",
                    owner=each.role == ROLE_OWNER,
                    role=each.role,
                    created_at=timestamp(each.workspace.created_at),
                    is_default=each.is_default,
                )
                for each in mine
            ]
        )

    async def SearchPublicWorkspaces(
        self, request: user_pb2.SearchPublicWorkspacesRequest, context: Context
    ) -> user_pb2.SearchPublicWorkspacesResponse:
        """Public workspaces by name."""
        caller = caller_id()
        async with self.database.unit_of_work() as session:
            found = await service.search_public_workspaces(session, text=request.workspace_name)
            mine = await service.member_of(session, user_id=caller, workspace_ids=[w.id for w in found])
        return user_pb2.SearchPublicWorkspacesResponse(
            workspaces=[workspace_message(w, member=w.id in mine) for w in found]
        )

    async def GetWorkspace(
        self, request: user_pb2.GetWorkspaceRequest, context: Context
    ) -> user_pb2.GetWorkspaceResponse:
        """One workspace the caller may see."""
        caller, workspace_id = caller_id(), parse_uuid(request.workspace_id, field="workspaceId")
        async with self.database.unit_of_work() as session:
            workspace, member = await service.get_visible_workspace(
                session, workspace_id=workspace_id, caller_id=caller
            )
        return user_pb2.GetWorkspaceResponse(workspace=workspace_message(workspace, member=member))

    async def UpdateWorkspace(
        self, request: user_pb2.UpdateWorkspaceRequest, context: Context
    ) -> user_pb2.UpdateWorkspaceResponse:
        """Update a workspace (OWNER or ADMIN)."""
        caller, workspace_id = caller_id(), parse_uuid(request.workspace_id, field="workspaceId")
        async with self.database.unit_of_work() as session:
            workspace = await service.update_workspace(
                session,
                caller_id=caller,
                workspace_id=workspace_id,
                name=request.workspace_name if request.HasField("workspace_name") else None,
                description=request.workspace_description
                if request.HasField("workspace_description")
                else None,
                is_public=request.is_public if request.HasField("is_public") else None,
                need_approved=request.need_approved if request.HasField("need_approved") else None,
            )
        return user_pb2.UpdateWorkspaceResponse(workspace=workspace_message(workspace))

    async def DeleteWorkspace(
        self, request: user_pb2.DeleteWorkspaceRequest, context: Context
    ) -> user_pb2.DeleteWorkspaceResponse:
        """Soft-delete a workspace (OWNER only)."""
        caller, workspace_id = caller_id(), parse_uuid(request.workspace_id, field="workspaceId")
        async with self.database.unit_of_work() as session:
            await service.delete_workspace(session, caller_id=caller, workspace_id=workspace_id)
        await self._memberships_changed(workspace_id)
        return user_pb2.DeleteWorkspaceResponse(message="Workspace deleted successfully")

    async def SetDefaultWorkspace(
        self, request: user_pb2.SetDefaultWorkspaceRequest, context: Context
    ) -> user_pb2.SetDefaultWorkspaceResponse:
        """Make a workspace the caller's default."""
        caller, workspace_id = caller_id(), parse_uuid(request.workspace_id, field="workspaceId")
        async with self.database.unit_of_work() as session:
            await service.set_default_workspace(session, caller_id=caller, workspace_id=workspace_id)
        return user_pb2.SetDefaultWorkspaceResponse(message="Default workspace set successfully")

    async def GetWorkspaceSettings(
        self, request: user_pb2.GetWorkspaceSettingsRequest, context: Context
    ) -> user_pb2.GetWorkspaceSettingsResponse:
        """A workspace's settings (members only)."""
        caller, workspace_id = caller_id(), parse_uuid(request.workspace_id, field="workspaceId")
        async with self.database.unit_of_work() as session:
            workspace = await service.get_settings(session, caller_id=caller, workspace_id=workspace_id)
        return user_pb2.GetWorkspaceSettingsResponse(settings=settings_message(workspace))

    async def UpdateWorkspaceSettings(
        self, request: user_pb2.UpdateWorkspaceSettingsRequest, context: Context
    ) -> user_pb2.UpdateWorkspaceSettingsResponse:
        """Update a workspace's settings (OWNER or ADMIN)."""
        caller, workspace_id = caller_id(), parse_uuid(request.workspace_id, field="workspaceId")
        async with self.database.unit_of_work() as session:
            workspace = await service.update_workspace(
                session,
                caller_id=caller,
                workspace_id=workspace_id,
                name=request.workspace_name if request.HasField("workspace_name") else None,
                description=request.workspace_description
                if request.HasField("workspace_description")
                else None,
                is_public=request.is_public if request.HasField("is_public") else None,
                need_approved=request.requires_approval if request.HasField("requires_approval") else None,
                only_owner_can_invite=(
                    request.only_owner_can_invite if request.HasField("only_owner_can_invite") else None
                ),
            )
        return user_pb2.UpdateWorkspaceSettingsResponse(settings=settings_message(workspace))

    # --- members --------------------------------------------------------------------------------------

    async def ListWorkspaceMembers(
        self, request: user_pb2.ListWorkspaceMembersRequest, context: Context
    ) -> user_pb2.ListWorkspaceMembersResponse:
        """The active members (members only)."""
        caller, workspace_id = caller_id(), parse_uuid(request.workspace_id, field="workspaceId")
        async with self.database.unit_of_work() as session:
            views = await service.list_members(session, caller_id=caller, workspace_id=workspace_id)
        return user_pb2.ListWorkspaceMembersResponse(members=[member_message(view) for view in views])

    async def InviteWorkspaceMember(
        self, request: user_pb2.InviteWorkspaceMemberRequest, context: Context
    ) -> user_pb2.InviteWorkspaceMemberResponse:
        """Add a user by e-mail."""
        caller, workspace_id = caller_id(), parse_uuid(request.workspace_id, field="workspaceId")
        async with self.database.unit_of_work() as session:
            view = await service.invite_member(
                session,
                caller_id=caller,
                workspace_id=workspace_id,
                email=request.email,
                role_name=request.role_name,
            )
        await self._memberships_changed(workspace_id)
        return user_pb2.InviteWorkspaceMemberResponse(member=member_message(view))

    async def UpdateWorkspaceMemberRole(
        self, request: user_pb2.UpdateWorkspaceMemberRoleRequest, context: Context
    ) -> user_pb2.UpdateWorkspaceMemberRoleResponse:
        """Change a member's role."""
        caller = caller_id()
        workspace_id = parse_uuid(request.workspace_id, field="workspaceId")
        member_id = parse_uuid(request.member_id, field="memberId")
        async with self.database.unit_of_work() as session:
            view = await service.update_member_role(
                session,
                caller_id=caller,
                workspace_id=workspace_id,
                member_id=member_id,
                role_name=request.role_name,
            )
        await self._memberships_changed(workspace_id)
        return user_pb2.UpdateWorkspaceMemberRoleResponse(member=member_message(view))

    async def RemoveWorkspaceMember(
        self, request: user_pb2.RemoveWorkspaceMemberRequest, context: Context
    ) -> user_pb2.RemoveWorkspaceMemberResponse:
        """Remove a member, or leave."""
        caller = caller_id()
        workspace_id = parse_uuid(request.workspace_id, field="workspaceId")
        member_id = parse_uuid(request.member_id, field="memberId")
        async with self.database.unit_of_work() as session:
            removed = await service.remove_member(
                session, caller_id=caller, workspace_id=workspace_id, member_id=member_id
            )
        await self._memberships_changed(workspace_id, removed=[removed])
        return user_pb2.RemoveWorkspaceMemberResponse(message="Member removed successfully")

    async def ValidateWorkspaceMember(
        self, request: user_pb2.ValidateWorkspaceMemberRequest, context: Context
    ) -> user_pb2.ValidateWorkspaceMemberResponse:
        """Whether a user is a member (asked by a member)."""
        caller = caller_id()
        workspace_id = parse_uuid(request.workspace_id, field="workspaceId")
        user_id = service.parse_user_id(request.user_id)
        async with self.database.unit_of_work() as session:
            found = await service.validate_member(
                session, caller_id=caller, workspace_id=workspace_id, user_id=user_id
            )
        return user_pb2.ValidateWorkspaceMemberResponse(is_member=found)

    async def ApproveWorkspaceMember(
        self, request: user_pb2.ApproveWorkspaceMemberRequest, context: Context
    ) -> user_pb2.ApproveWorkspaceMemberResponse:
        """Approve a user's pending join request."""
        view = await self._decide(request.workspace_id, request.user_id, approve=True)
        return user_pb2.ApproveWorkspaceMemberResponse(join_request=join_request_message(view))

    async def RejectWorkspaceMember(
        self, request: user_pb2.RejectWorkspaceMemberRequest, context: Context
    ) -> user_pb2.RejectWorkspaceMemberResponse:
        """Reject a user's pending join request."""
        view = await self._decide(request.workspace_id, request.user_id, approve=False)
        return user_pb2.RejectWorkspaceMemberResponse(join_request=join_request_message(view))

    async def _decide(self, workspace: str, user: str, *, approve: bool) -> service.JoinRequestView:
        caller = caller_id()
        workspace_id = parse_uuid(workspace, field="workspaceId")
        user_id = service.parse_user_id(user)
        async with self.database.unit_of_work() as session:
            view = await service.decide_pending_of_user(
                session, caller_id=caller, workspace_id=workspace_id, user_id=user_id, approve=approve
            )
        await self._memberships_changed(workspace_id)
        return view

    # --- join requests --------------------------------------------------------------------------------

    async def CreateJoinRequest(
        self, request: user_pb2.CreateJoinRequestRequest, context: Context
    ) -> user_pb2.CreateJoinRequestResponse:
        """Ask to join a public workspace."""
        caller, workspace_id = caller_id(), parse_uuid(request.workspace_id, field="workspaceId")
        async with self.database.unit_of_work() as session:
            view = await service.create_join_request(session, caller_id=caller, workspace_id=workspace_id)
        return user_pb2.CreateJoinRequestResponse(join_request=join_request_message(view))

    async def ListJoinRequests(
        self, request: user_pb2.ListJoinRequestsRequest, context: Context
    ) -> user_pb2.ListJoinRequestsResponse:
        """A workspace's join requests (OWNER or ADMIN)."""
        caller, workspace_id = caller_id(), parse_uuid(request.workspace_id, field="workspaceId")
        async with self.database.unit_of_work() as session:
            views = await service.list_join_requests(
                session, caller_id=caller, workspace_id=workspace_id, status=request.status
            )
        return user_pb2.ListJoinRequestsResponse(join_requests=[join_request_message(view) for view in views])

    async def ProcessJoinRequest(
        self, request: user_pb2.ProcessJoinRequestRequest, context: Context
    ) -> user_pb2.ProcessJoinRequestResponse:
        """Approve or reject a join request by id."""
        caller = caller_id()
        workspace_id = parse_uuid(request.workspace_id, field="workspaceId")
        request_id = parse_uuid(request.request_id, field="requestId")
        async with self.database.unit_of_work() as session:
            view = await service.process_join_request(
                session,
                caller_id=caller,
                workspace_id=workspace_id,
                request_id=request_id,
                status=request.status,
            )
        await self._memberships_changed(workspace_id)
        return user_pb2.ProcessJoinRequestResponse(join_request=join_request_message(view))

    # --- profiles -------------------------------------------------------------------------------------

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
        caller, workspace_id = caller_id(), _header_workspace(context)
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
        caller, workspace_id = caller_id(), _header_workspace(context, request.workspace_id)
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
        user_id = service.parse_user_id(request.user_id)
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

    async def CreateProfileImageUploadUrl(
        self, request: user_pb2.CreateProfileImageUploadUrlRequest, context: Context
    ) -> user_pb2.CreateProfileImageUploadUrlResponse:
        """A presigned PUT URL for a new profile picture."""
        caller = caller_id()
        name, _ = service.check_image(
            file_name=request.file_name, content_type=request.content_type, file_size=request.file_size
        )
        key = service.profile_image_key(user_id=caller, file_name=name)
        lifetime = self.store.upload_lifetime
        return user_pb2.CreateProfileImageUploadUrlResponse(
            # Bound to the declared type and size: S3 refuses any other PUT to this URL.
            upload_url=self.store.upload_url(key, content_type=request.content_type, size=request.file_size),
            file_key=key,
            expires_at=timestamp(datetime.now(UTC) + lifetime),
            expires_in=int(lifetime.total_seconds()),
        )

    async def CreateProfileImageAttachment(
        self, request: user_pb2.CreateProfileImageAttachmentRequest, context: Context
    ) -> user_pb2.CreateProfileImageAttachmentResponse:
        """Record an uploaded picture."""
        caller = caller_id()
        async with self.database.unit_of_work() as session:
            attachment = await service.create_attachment(
                session,
                caller_id=caller,
                file_key=request.file_key,
                file_name=request.file_name,
                content_type=request.content_type,
                file_size=request.file_size,
                file_url=self.store.public_url(request.file_key.strip()),
            )
            # What was PUT must be what was declared (a server that ignores the signed headers would
            # take anything): otherwise the row is not kept. Accepted, it is served as a download.
            problem = await self.store.accept_upload(
                attachment.file_key,
                size=attachment.file_size,
                content_type=attachment.content_type,
                file_name=attachment.file_name,
            )
            if problem is not None:
                raise InvalidField("fileKey", problem)
        return user_pb2.CreateProfileImageAttachmentResponse(attachment=attachment_message(attachment))

    async def UpdateMyProfileImage(
        self, request: user_pb2.UpdateMyProfileImageRequest, context: Context
    ) -> user_pb2.UpdateMyProfileImageResponse:
        """Use an uploaded picture on the caller's X-Workspace-Id profile."""
        caller, workspace_id = caller_id(), _header_workspace(context, request.workspace_id)
        attachment_id = parse_uuid(request.attachment_id, field="attachmentId")
        async with self.database.unit_of_work() as session:
            profile = await service.set_profile_image(
                session, caller_id=caller, workspace_id=workspace_id, attachment_id=attachment_id
            )
        return user_pb2.UpdateMyProfileImageResponse(profile=profile_message(profile))


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
        self, request: internal_pb2.CheckUserExistsRequest, context: Context
    ) -> internal_pb2.CheckUserExistsResponse:
        """Whether an active user with this id exists."""
        user_id = service.parse_user_id(request.user_id)
        async with self.database.unit_of_work() as session:
            found = await service.exists(session, user_id=user_id)
        return internal_pb2.CheckUserExistsResponse(exists=found)

    async def _memberships(
        self, workspace: str, users: Sequence[str]
    ) -> list[internal_pb2.WorkspaceMembership]:
        workspace_id = parse_uuid(workspace, field="workspaceId")
        user_ids = _ids(users, field="userIds")
        async with self.database.unit_of_work() as session:
            roles = await service.memberships(session, workspace_id=workspace_id, user_ids=user_ids)
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
        service.parse_user_id(request.user_id)
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
            users = await service.list_by_ids(session, user_ids=user_ids)
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
        user_id = service.parse_user_id(request.user_id)
        async with self.database.unit_of_work() as session:
            profile = await service.get_profile_or_raise(session, workspace_id=workspace_id, user_id=user_id)
        return internal_pb2.GetProfileResponse(profile=internal_profile(profile))

    async def GetProfiles(
        self, request: internal_pb2.GetProfilesRequest, context: Context
    ) -> internal_pb2.GetProfilesResponse:
        """Many users' profiles in one workspace, in request order."""
        workspace_id = parse_uuid(request.workspace_id, field="workspaceId")
        user_ids = _ids(request.user_ids, field="userIds")
        async with self.database.unit_of_work() as session:
            found = await service.profiles_for(session, workspace_id=workspace_id, user_ids=user_ids)
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
            workspace = await service.get_workspace_or_raise(session, workspace_id=workspace_id)
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
