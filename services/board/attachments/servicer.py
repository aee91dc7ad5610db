"""Attachments over gRPC: protobuf ↔ :mod:`services.board.attachments.service`; no SQL here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession
from typing_extensions import override
from wealist.board.v1 import attachment_pb2, attachment_pb2_grpc, common_pb2

from mesh import Context, InvalidArgument, InvalidField, ObjectStore, caller_id, parse_uuid, timestamp
from services.board.attachments import service
from services.board.context import BoardContext
from services.board.models import Attachment


def attachment_message(row: Attachment, store: ObjectStore) -> common_pb2.Attachment:
    """The contract's AttachmentFull, with a presigned GET URL as ``fileUrl``."""
    message = common_pb2.Attachment(
        id=str(row.id),
        attachment_id=str(row.id),
        entity_type=row.entity_type,
        status=row.status,
        file_name=row.file_name,
        file_url=store.download_url(row.file_key),
        file_size=row.file_size,
        content_type=row.content_type,
        uploaded_by=str(row.uploaded_by),
        uploaded_at=timestamp(row.created_at),
        expires_at=timestamp(row.expires_at),
    )
    if row.entity_id is not None:
        message.entity_id = str(row.entity_id)
    return message


def inline_message(file: service.InlineFile, store: ObjectStore) -> common_pb2.AttachmentInline:
    """An attachment as a project, board or comment embeds it."""
    return common_pb2.AttachmentInline(
        id=str(file.attachment_id),
        attachment_id=str(file.attachment_id),
        file_name=file.file_name,
        file_url=store.download_url(file.file_key),
        file_size=file.file_size,
        content_type=file.content_type,
        uploaded_by=str(file.uploaded_by),
        uploaded_at=timestamp(file.created_at),
    )


async def inline(
    session: AsyncSession, store: ObjectStore, entity_type: str, entity_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[common_pb2.AttachmentInline]]:
    """The confirmed attachments of each entity as messages (every id is a key), newest first."""
    found = await service.inline_files(session, entity_type=entity_type, entity_ids=entity_ids)
    return {entity: [inline_message(file, store) for file in files] for entity, files in found.items()}


async def purge(ctx: BoardContext, ids: Sequence[uuid.UUID]) -> None:
    """:func:`service.purge` on the service's database and bucket, after the commit of a release."""
    await service.purge(ctx.database, ctx.store, ids)


class AttachmentServicer(attachment_pb2_grpc.AttachmentServiceServicer):
    """Uploads by presigned URL, downloads, deletes and listings of attachments."""

    def __init__(self, ctx: BoardContext) -> None:
        self.ctx = ctx

    @override
    async def CreatePresignedUpload(
        self, request: attachment_pb2.CreatePresignedUploadRequest, context: Context
    ) -> attachment_pb2.CreatePresignedUploadResponse:
        """Record a TEMP upload in a workspace the caller belongs to and return its presigned PUT URL."""
        entity_type = service.parse_entity_type(request.entity_type)
        try:
            workspace_id = uuid.UUID(request.workspace_id.strip())
        except ValueError:
            raise InvalidField("workspaceId", "Invalid workspace ID") from None
        name, kind, extension = service.check_file(
            file_name=request.file_name, file_size=request.file_size, content_type=request.content_type
        )
        user_id = caller_id()
        await self.ctx.directory.require_member(workspace_id, user_id)
        now = service.current_time()
        attachment_id = uuid.uuid4()
        key = service.object_key(
            entity_type=entity_type,
            workspace_id=workspace_id,
            attachment_id=attachment_id,
            at=now,
            extension=extension,
        )
        # Signed before the row is written: a failure leaves nothing behind. The signature binds the
        # declared type and size, so S3 refuses a PUT of anything else.
        upload_url = self.ctx.store.upload_url(key, content_type=request.content_type, size=request.file_size)
        async with self.ctx.database.unit_of_work() as session:
            await service.create_upload(
                session,
                attachment_id=attachment_id,
                entity_type=entity_type,
                workspace_id=workspace_id,
                file_key=key,
                file_name=name,
                file_size=request.file_size,
                content_type=kind,
                user_id=user_id,
                now=now,
                lifetime_seconds=self.ctx.settings.temp_upload_seconds,
            )
        return attachment_pb2.CreatePresignedUploadResponse(
            attachment_id=str(attachment_id),
            upload_url=upload_url,
            file_key=key,
            expires_in=self.ctx.settings.upload_url_seconds,
        )

    @override
    async def CreateAttachment(
        self, request: attachment_pb2.CreateAttachmentRequest, context: Context
    ) -> attachment_pb2.CreateAttachmentResponse:
        """The caller's TEMP upload of ``fileKey``, once its bytes are in the bucket (never a new row)."""
        entity_type = service.parse_entity_type(request.entity_type)
        service.check_file(
            file_name=request.file_name, file_size=request.file_size, content_type=request.content_type
        )
        key = request.file_key.strip()
        if not key.startswith(service.KEY_PREFIX):
            raise InvalidField("fileKey", service.INVALID_FILE_KEY)
        user_id = caller_id()
        async with self.ctx.database.unit_of_work() as session:
            row = await service.get_own_upload(
                session,
                file_key=key,
                entity_type=entity_type,
                user_id=user_id,
                memberships=self.ctx.directory,
            )
        # The client calls this after its PUT; a key with nothing behind it, or with another size or
        # type than declared, cannot be attached.
        problem = await self.ctx.store.upload_problem(key, size=row.file_size, content_type=row.content_type)
        if problem is not None:
            raise InvalidField("fileKey", problem)
        return attachment_pb2.CreateAttachmentResponse(attachment=attachment_message(row, self.ctx.store))

    @override
    async def GetAttachmentDownload(
        self, request: attachment_pb2.GetAttachmentDownloadRequest, context: Context
    ) -> attachment_pb2.GetAttachmentDownloadResponse:
        """A presigned GET URL (1 hour) for an attachment the caller may see."""
        attachment_id = parse_uuid(request.attachment_id, field="attachmentId")
        user_id = caller_id()
        async with self.ctx.database.unit_of_work() as session:
            row = await service.get_visible(
                session, attachment_id=attachment_id, user_id=user_id, memberships=self.ctx.directory
            )
        return attachment_pb2.GetAttachmentDownloadResponse(
            download_url=self.ctx.store.download_url(row.file_key),
            file_name=row.file_name,
            content_type=row.content_type,
            expires_in=self.ctx.settings.download_url_seconds,
        )

    @override
    async def DeleteAttachment(
        self, request: attachment_pb2.DeleteAttachmentRequest, context: Context
    ) -> attachment_pb2.DeleteAttachmentResponse:
        """Delete an attachment (its uploader, or an OWNER or ADMIN of its project), object included."""
        attachment_id = parse_uuid(request.attachment_id, field="attachmentId")
        user_id = caller_id()
        async with self.ctx.database.unit_of_work() as session:
            await service.delete_attachment(
                session, attachment_id=attachment_id, user_id=user_id, memberships=self.ctx.directory
            )
        await purge(self.ctx, [attachment_id])
        return attachment_pb2.DeleteAttachmentResponse(message="Attachment deleted successfully")

    @override
    async def ListAttachments(
        self, request: attachment_pb2.ListAttachmentsRequest, context: Context
    ) -> attachment_pb2.ListAttachmentsResponse:
        """The confirmed attachments of one project, board or comment the caller may see, newest first."""
        given = [
            (field, value)
            for field, value in (
                ("projectId", request.project_id),
                ("boardId", request.board_id),
                ("commentId", request.comment_id),
            )
            if value
        ]
        if len(given) != 1:
            raise InvalidArgument("exactly one of projectId, boardId and commentId must be given")
        field, value = given[0]
        entity_id = parse_uuid(value, field=field)
        user_id = caller_id()
        async with self.ctx.database.unit_of_work() as session:
            rows = await service.list_attachments(
                session, field=field, entity_id=entity_id, user_id=user_id, memberships=self.ctx.directory
            )
        return attachment_pb2.ListAttachmentsResponse(
            attachments=[attachment_message(row, self.ctx.store) for row in rows]
        )
