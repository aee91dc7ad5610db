"""Profile pictures over gRPC: protobuf ↔ :mod:`services.user.pictures.service` and the object store.

No SQL here.
"""

from __future__ import annotations

from datetime import UTC, datetime

from wealist.user.v1 import user_pb2

from mesh import Context, InvalidField, caller_id, parse_uuid, timestamp
from services.user.api import UserApi
from services.user.models import Attachment
from services.user.pictures import service
from services.user.profiles.servicer import header_workspace, profile_message


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


class PicturesServicer(UserApi):
    """Upload URLs for pictures, recording an upload, and putting it on a profile."""

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
        caller, workspace_id = caller_id(), header_workspace(context, request.workspace_id)
        attachment_id = parse_uuid(request.attachment_id, field="attachmentId")
        async with self.database.unit_of_work() as session:
            profile = await service.set_profile_image(
                session, caller_id=caller, workspace_id=workspace_id, attachment_id=attachment_id
            )
        return user_pb2.UpdateMyProfileImageResponse(profile=profile_message(profile))
