"""Join requests over gRPC: protobuf ↔ :mod:`services.user.join_requests.service`; no SQL here."""

from __future__ import annotations

from wealist.user.v1 import user_pb2

from mesh import Context, caller_id, parse_uuid, timestamp
from services.user import checks
from services.user.api import UserApi
from services.user.join_requests import service


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


class JoinRequestsServicer(UserApi):
    """Asking to join a workspace, and the OWNER's and ADMINs' decisions (by request or by user)."""

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
        user_id = checks.parse_user_id(user)
        async with self.database.unit_of_work() as session:
            view = await service.decide_pending_of_user(
                session, caller_id=caller, workspace_id=workspace_id, user_id=user_id, approve=approve
            )
        await self._memberships_changed(workspace_id)
        return view
