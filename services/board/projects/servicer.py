"""Projects over gRPC: protobuf ↔ :mod:`services.board.projects.service`; no SQL here."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis.exceptions import RedisError
from sqlmodel.ext.asyncio.session import AsyncSession
from typing_extensions import override
from wealist.board.v1 import common_pb2, project_pb2, project_pb2_grpc

from mesh import (
    Context,
    FailedPrecondition,
    Forbidden,
    InvalidField,
    NotFound,
    caller_id,
    optional_datetime,
    parse_uuid,
    parse_uuids,
    timestamp,
)
from services.board.access import by_operator, check_dates, see_project
from services.board.attachments import servicer as attachment_api
from services.board.context import BoardContext
from services.board.directory import Person
from services.board.models import (
    ENTITY_PROJECT,
    FIELD_TYPES,
    REQUEST_APPROVED,
    REQUEST_REJECTED,
    ROLE_OWNER,
    FieldOption,
    Project,
    ProjectJoinRequest,
    ProjectMember,
)
from services.board.projects.service import (
    ASSIGNABLE_ROLES,
    CURRENT_PROJECT_SECONDS,
    FIELD_INFO,
    FIELD_TYPE_INFOS,
    INIT_FIELD_TYPE,
    REQUEST_STATUSES,
    change_role,
    clean_description,
    clean_name,
    create_join_request,
    create_project,
    current_project_key,
    decide_join_request,
    default_project,
    delete_project,
    field_options,
    get_join_request_for_update,
    list_join_requests,
    list_members,
    list_projects,
    parse_status,
    parse_workspace_id,
    remove_member,
    search_bounds,
    search_projects,
    update_project,
)

# Named as before the split, so the log lines of the current project keep their logger.
log = logging.getLogger("services.board.projects")


def _inline(
    found: dict[uuid.UUID, list[common_pb2.AttachmentInline]], project_id: uuid.UUID
) -> list[common_pb2.AttachmentInline]:
    return found.get(project_id, [])


def project_message(
    project: Project,
    *,
    files: Iterable[common_pb2.AttachmentInline] = (),
    owner: Person | None = None,
) -> project_pb2.Project:
    """The contract's Project; with ``owner``, Project+ (the owner's workspace name and e-mail)."""
    return project_pb2.Project(
        project_id=str(project.id),
        workspace_id=str(project.workspace_id),
        owner_id=str(project.owner_id),
        owner_email=owner.email if owner else "",
        owner_name=owner.name if owner else "",
        name=project.name,
        description=project.description,
        is_public=project.is_public,
        start_date=timestamp(project.start_date),
        due_date=timestamp(project.due_date),
        attachments=list(files),
        created_at=timestamp(project.created_at),
        updated_at=timestamp(project.updated_at),
    )


def member_message(member: ProjectMember, person: Person | None = None) -> project_pb2.ProjectMember:
    """The contract's project Member (memberId is the row id)."""
    return project_pb2.ProjectMember(
        member_id=str(member.id),
        project_id=str(member.project_id),
        user_id=str(member.user_id),
        user_email=person.email if person else "",
        user_name=person.name if person else "",
        role_name=member.role_name,
        joined_at=timestamp(member.joined_at),
    )


def join_request_message(
    request: ProjectJoinRequest, person: Person | None = None
) -> project_pb2.ProjectJoinRequest:
    """The contract's project JoinRequest."""
    return project_pb2.ProjectJoinRequest(
        request_id=str(request.id),
        project_id=str(request.project_id),
        user_id=str(request.user_id),
        user_email=person.email if person else "",
        user_name=person.name if person else "",
        status=request.status,
        requested_at=timestamp(request.requested_at),
        updated_at=timestamp(request.updated_at),
    )


def init_fields(options: Sequence[FieldOption]) -> list[project_pb2.InitField]:
    """stage, importance and role, each with its options in display order."""
    fields = []
    for field_type in FIELD_TYPES:
        name, description = FIELD_INFO[field_type]
        fields.append(
            project_pb2.InitField(
                field_id=field_type,
                field_name=name,
                field_type=INIT_FIELD_TYPE,
                is_required=True,
                description=description,
                options=[
                    project_pb2.InitFieldOption(
                        option_id=str(option.id),
                        option_label=option.label,
                        option_value=option.value,
                        color=option.color,
                        display_order=option.display_order,
                        field_id=field_type,
                    )
                    for option in options
                    if option.field_type == field_type
                ],
            )
        )
    return fields


@dataclass(frozen=True, slots=True)
class _Listed:
    """Projects read in one unit of work, with their files."""

    projects: list[Project]
    files: dict[uuid.UUID, list[common_pb2.AttachmentInline]]


class ProjectServicer(project_pb2_grpc.ProjectServiceServicer):
    """The project API the gateway exposes."""

    def __init__(self, ctx: BoardContext) -> None:
        self.ctx = ctx

    async def _files(
        self, session: AsyncSession, projects: Sequence[Project]
    ) -> dict[uuid.UUID, list[common_pb2.AttachmentInline]]:
        if not projects:
            return {}
        return await attachment_api.inline(session, self.ctx.store, ENTITY_PROJECT, [p.id for p in projects])

    async def _owners(self, projects: Sequence[Project]) -> dict[uuid.UUID, Person]:
        if not projects:
            return {}
        return await self.ctx.directory.people(projects[0].workspace_id, {p.owner_id for p in projects})

    async def _plus(self, listed: _Listed) -> list[project_pb2.Project]:
        """Project+ of each listed project (one profile lookup for all owners)."""
        owners = await self._owners(listed.projects)
        return [
            project_message(p, files=_inline(listed.files, p.id), owner=owners.get(p.owner_id))
            for p in listed.projects
        ]

    async def _workspace_projects(self, workspace_id: uuid.UUID) -> _Listed:
        user_id = caller_id()
        await self.ctx.directory.require_member(workspace_id, user_id)
        async with self.ctx.database.unit_of_work() as session:
            projects = await list_projects(session, workspace_id=workspace_id)
            return _Listed(projects, await self._files(session, projects))

    @override
    async def ListProjects(
        self, request: project_pb2.ListProjectsRequest, context: Context
    ) -> project_pb2.ListProjectsResponse:
        """Every project of a workspace, newest first, as one page."""
        listed = await self._workspace_projects(parse_workspace_id(request.workspace_id))
        projects = await self._plus(listed)
        return project_pb2.ListProjectsResponse(
            projects=projects, total=len(projects), page=1, limit=len(projects)
        )

    @override
    async def ListWorkspaceProjects(
        self, request: project_pb2.ListWorkspaceProjectsRequest, context: Context
    ) -> project_pb2.ListWorkspaceProjectsResponse:
        """The projects of a workspace, newest first."""
        listed = await self._workspace_projects(parse_workspace_id(request.workspace_id))
        return project_pb2.ListWorkspaceProjectsResponse(projects=await self._plus(listed))

    @override
    async def SearchProjects(
        self, request: project_pb2.SearchProjectsRequest, context: Context
    ) -> project_pb2.SearchProjectsResponse:
        """One page of a workspace's projects whose name or description contains the query."""
        workspace_id = parse_workspace_id(request.workspace_id)
        query = request.query.strip()
        if not query:
            raise InvalidField("query", "Search query is required")
        page, limit = search_bounds(request.page, request.limit)
        await self.ctx.directory.require_member(workspace_id, caller_id())
        async with self.ctx.database.unit_of_work() as session:
            projects, total = await search_projects(
                session, workspace_id=workspace_id, query=query, page=page, limit=limit
            )
            listed = _Listed(projects, await self._files(session, projects))
        return project_pb2.SearchProjectsResponse(
            projects=await self._plus(listed), total=total, page=page, limit=limit
        )

    @override
    async def GetDefaultProject(
        self, request: project_pb2.GetDefaultProjectRequest, context: Context
    ) -> project_pb2.GetDefaultProjectResponse:
        """The workspace's default project: the first one created in it."""
        workspace_id = parse_workspace_id(request.workspace_id)
        await self.ctx.directory.require_member(workspace_id, caller_id())
        async with self.ctx.database.unit_of_work() as session:
            project = await default_project(session, workspace_id=workspace_id)
            listed = _Listed([project], await self._files(session, [project]))
        return project_pb2.GetDefaultProjectResponse(project=(await self._plus(listed))[0])

    @override
    async def GetProject(
        self, request: project_pb2.GetProjectRequest, context: Context
    ) -> project_pb2.GetProjectResponse:
        """One project, with its owner's name and e-mail."""
        project_id = parse_uuid(request.project_id, field="projectId")
        async with self.ctx.database.unit_of_work() as session:
            seen = await see_project(session, self.ctx.directory, project_id, caller_id())
            listed = _Listed([seen.project], await self._files(session, [seen.project]))
        return project_pb2.GetProjectResponse(project=(await self._plus(listed))[0])

    @override
    async def CreateProject(
        self, request: project_pb2.CreateProjectRequest, context: Context
    ) -> project_pb2.CreateProjectResponse:
        """A project owned by the caller, with the default options, in one transaction."""
        user_id = caller_id()
        workspace_id = parse_workspace_id(request.workspace_id)
        name = clean_name(request.name)
        description = clean_description(request.description)
        start = optional_datetime(request, "start_date")
        due = optional_datetime(request, "due_date")
        check_dates(start, due)
        attachment_ids = parse_uuids(request.attachment_ids, field="attachmentIds")
        await self.ctx.directory.require_member(workspace_id, user_id)
        async with self.ctx.database.unit_of_work() as session:
            project = await create_project(
                session,
                workspace_id=workspace_id,
                owner_id=user_id,
                name=name,
                description=description,
                start_date=start,
                due_date=due,
                attachment_ids=attachment_ids,
                store=self.ctx.store,
            )
            files = await self._files(session, [project])
        return project_pb2.CreateProjectResponse(
            project=project_message(project, files=_inline(files, project.id))
        )

    @override
    async def UpdateProject(
        self, request: project_pb2.UpdateProjectRequest, context: Context
    ) -> project_pb2.UpdateProjectResponse:
        """Change the fields that are set (OWNER only); listed attachments are added."""
        user_id = caller_id()
        project_id = parse_uuid(request.project_id, field="projectId")
        name = clean_name(request.name) if request.HasField("name") else None
        description = clean_description(request.description) if request.HasField("description") else None
        start = optional_datetime(request, "start_date")
        due = optional_datetime(request, "due_date")
        attachment_ids = parse_uuids(request.attachment_ids, field="attachmentIds")
        async with self.ctx.database.unit_of_work() as session:
            seen = await see_project(session, self.ctx.directory, project_id, user_id, lock=True)
            project = await update_project(
                session,
                seen=seen,
                user_id=user_id,
                name=name,
                description=description,
                start_date=start,
                due_date=due,
                attachment_ids=attachment_ids,
                store=self.ctx.store,
            )
            files = await self._files(session, [project])
        return project_pb2.UpdateProjectResponse(
            project=project_message(project, files=_inline(files, project.id))
        )

    @override
    async def DeleteProject(
        self, request: project_pb2.DeleteProjectRequest, context: Context
    ) -> project_pb2.DeleteProjectResponse:
        """Delete a project with everything in it (OWNER only); its files go after the commit."""
        user_id = caller_id()
        project_id = parse_uuid(request.project_id, field="projectId")
        async with self.ctx.database.unit_of_work() as session:
            # Not locked here: delete_project takes the workspace lock before touching any project row.
            seen = await see_project(session, self.ctx.directory, project_id, user_id)
            if seen.project_role != ROLE_OWNER:
                raise Forbidden("Only project owner can delete project")
            released = await delete_project(session, project=seen.project)
        await attachment_api.purge(self.ctx, released)
        return project_pb2.DeleteProjectResponse(message="Project deleted successfully")

    @override
    async def GetInitSettings(
        self, request: project_pb2.GetInitSettingsRequest, context: Context
    ) -> project_pb2.GetInitSettingsResponse:
        """The project, its three fields with their options, and the field types; remembered as current."""
        user_id = caller_id()
        project_id = parse_uuid(request.project_id, field="projectId")
        async with self.ctx.database.unit_of_work() as session:
            seen = await see_project(session, self.ctx.directory, project_id, user_id)
            options = await field_options(session, project_id=project_id)
        project = seen.project
        workspace = await self.ctx.directory.workspace(project.workspace_id)
        people = await self.ctx.directory.people(project.workspace_id, [project.owner_id, workspace.owner_id])
        owner = people.get(project.owner_id)
        workspace_owner = people.get(workspace.owner_id)
        try:
            # Not for the operator: the method is declared without side effects, which is what lets the
            # operator identity call it at all.
            if not by_operator():
                await self.ctx.redis.set(
                    current_project_key(user_id), str(project.id), ex=CURRENT_PROJECT_SECONDS
                )
        except RedisError:
            # Only option creation without a project id needs it; the kanban still loads without it.
            log.warning("could not remember the current project of %s", user_id, exc_info=True)
        return project_pb2.GetInitSettingsResponse(
            project=project_pb2.InitProject(
                project_id=str(project.id),
                workspace_id=str(project.workspace_id),
                workspace_name=workspace.name,
                workspace_email=workspace_owner.email if workspace_owner else "",
                name=project.name,
                description=project.description,
                owner_id=str(project.owner_id),
                owner_email=owner.email if owner else "",
                owner_name=owner.name if owner else "",
                is_public=project.is_public,
                start_date=timestamp(project.start_date),
                due_date=timestamp(project.due_date),
                created_at=timestamp(project.created_at),
                updated_at=timestamp(project.updated_at),
            ),
            fields=init_fields(options),
            field_types=[
                project_pb2.FieldTypeInfo(type_id=type_id, type_name=type_name, description=description)
                for type_id, type_name, description in FIELD_TYPE_INFOS
            ],
        )

    @override
    async def ListProjectMembers(
        self, request: project_pb2.ListProjectMembersRequest, context: Context
    ) -> project_pb2.ListProjectMembersResponse:
        """The project's members with their names and e-mails, in the order they joined."""
        project_id = parse_uuid(request.project_id, field="projectId")
        async with self.ctx.database.unit_of_work() as session:
            seen = await see_project(session, self.ctx.directory, project_id, caller_id())
            members = await list_members(session, project_id=project_id)
        people = await self.ctx.directory.people(seen.project.workspace_id, [m.user_id for m in members])
        return project_pb2.ListProjectMembersResponse(
            members=[member_message(m, people.get(m.user_id)) for m in members]
        )

    @override
    async def RemoveProjectMember(
        self, request: project_pb2.RemoveProjectMemberRequest, context: Context
    ) -> project_pb2.RemoveProjectMemberResponse:
        """Remove a member (OWNER or ADMIN; never the owner, never oneself)."""
        actor = caller_id()
        project_id = parse_uuid(request.project_id, field="projectId")
        member_user = parse_uuid(request.member_id, field="memberId")
        async with self.ctx.database.unit_of_work() as session:
            seen = await see_project(session, self.ctx.directory, project_id, actor)
            await remove_member(session, seen=seen, user_id=member_user, actor=actor)
        return project_pb2.RemoveProjectMemberResponse(message="Member removed successfully")

    @override
    async def UpdateProjectMemberRole(
        self, request: project_pb2.UpdateProjectMemberRoleRequest, context: Context
    ) -> project_pb2.UpdateProjectMemberRoleResponse:
        """Make a member ADMIN or MEMBER (OWNER only)."""
        actor = caller_id()
        project_id = parse_uuid(request.project_id, field="projectId")
        member_user = parse_uuid(request.member_id, field="memberId")
        if not request.role_name.strip():
            raise InvalidField("roleName", "is required")
        role = parse_status(request.role_name, allowed=ASSIGNABLE_ROLES, field="roleName")
        async with self.ctx.database.unit_of_work() as session:
            seen = await see_project(session, self.ctx.directory, project_id, actor)
            member = await change_role(session, seen=seen, user_id=member_user, role=role)
        return project_pb2.UpdateProjectMemberRoleResponse(member=member_message(member))

    @override
    async def ListProjectJoinRequests(
        self, request: project_pb2.ListProjectJoinRequestsRequest, context: Context
    ) -> project_pb2.ListProjectJoinRequestsResponse:
        """The project's join requests, newest first (OWNER or ADMIN)."""
        project_id = parse_uuid(request.project_id, field="projectId")
        status = parse_status(request.status, allowed=REQUEST_STATUSES) if request.status.strip() else None
        async with self.ctx.database.unit_of_work() as session:
            seen = await see_project(session, self.ctx.directory, project_id, caller_id())
            if not seen.manages:
                raise Forbidden("Only project owner or admin can view join requests")
            requests = await list_join_requests(session, project_id=project_id, status=status)
        people = await self.ctx.directory.people(seen.project.workspace_id, [r.user_id for r in requests])
        return project_pb2.ListProjectJoinRequestsResponse(
            join_requests=[join_request_message(r, people.get(r.user_id)) for r in requests]
        )

    @override
    async def CreateProjectJoinRequest(
        self, request: project_pb2.CreateProjectJoinRequestRequest, context: Context
    ) -> project_pb2.CreateProjectJoinRequestResponse:
        """Ask to join a project of one's workspace."""
        user_id = caller_id()
        if not request.project_id.strip():
            raise InvalidField("projectId", "is required")
        project_id = parse_uuid(request.project_id, field="projectId")
        async with self.ctx.database.unit_of_work() as session:
            seen = await see_project(session, self.ctx.directory, project_id, user_id)
            created = await create_join_request(session, seen=seen, user_id=user_id)
        return project_pb2.CreateProjectJoinRequestResponse(join_request=join_request_message(created))

    @override
    async def UpdateProjectJoinRequest(
        self, request: project_pb2.UpdateProjectJoinRequestRequest, context: Context
    ) -> project_pb2.UpdateProjectJoinRequestResponse:
        """Approve or reject a PENDING request (OWNER or ADMIN)."""
        user_id = caller_id()
        request_id = parse_uuid(request.join_request_id, field="joinRequestId")
        status = parse_status(request.status, allowed=(REQUEST_APPROVED, REQUEST_REJECTED))
        async with self.ctx.database.unit_of_work() as session:
            row = await get_join_request_for_update(session, request_id=request_id)
            try:
                seen = await see_project(session, self.ctx.directory, row.project_id, user_id)
            except NotFound:
                raise NotFound("Join request not found") from None
            if (
                status == REQUEST_APPROVED
                and seen.manages
                and await self.ctx.directory.role(seen.project.workspace_id, row.user_id) is None
            ):
                # The requester left the workspace since asking: a project membership would outlive it.
                raise FailedPrecondition("User is not a member of this workspace", code="VALIDATION_ERROR")
            decided = await decide_join_request(session, seen=seen, request=row, status=status)
        return project_pb2.UpdateProjectJoinRequestResponse(join_request=join_request_message(decided))
