"""Workspace members over gRPC: protobuf ↔ :mod:`services.user.members.service`; no SQL here."""

from __future__ import annotations

from wealist.user.v1 import user_pb2

from mesh import Context, caller_id, parse_uuid, timestamp
from services.user import checks
from services.user.api import UserApi
from services.user.members import service


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


class MembersServicer(UserApi):
    """A workspace's member list, invitations, roles and removals."""

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
        user_id = checks.parse_user_id(request.user_id)
        async with self.database.unit_of_work() as session:
            found = await service.validate_member(
                session, caller_id=caller, workspace_id=workspace_id, user_id=user_id
            )
        return user_pb2.ValidateWorkspaceMemberResponse(is_member=found)
