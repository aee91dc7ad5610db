"""Workspaces over gRPC: protobuf ↔ :mod:`services.user.workspaces.service`; no SQL here."""

from __future__ import annotations

from wealist.user.v1 import user_pb2

from mesh import Context, caller_id, parse_uuid, timestamp
from services.user.api import UserApi
from services.user.models import ROLE_OWNER, Workspace
from services.user.workspaces import service


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


class WorkspacesServicer(UserApi):
    """Creating, finding, changing and deleting workspaces, and their settings."""

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
