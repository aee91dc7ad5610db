"""Profile pictures: what may be uploaded, where, and a TEMP attachment until a profile uses it.

Keyword-only, session first, no protobuf (the object store itself is the servicer's).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh import Conflict, InvalidField, NotFound
from services.user.accounts.service import get_or_raise
from services.user.checks import bounded_text
from services.user.models import (
    ATTACHMENT_CONFIRMED,
    ATTACHMENT_TEMP,
    ENTITY_USER_PROFILE,
    Attachment,
    UserProfile,
)
from services.user.profiles.service import check_profile_workspace, own_profile

IMAGE_TYPES = frozenset({"image/jpeg", "image/jpg", "image/png", "image/gif", "image/webp"})
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_FILE_NAME = 255
# A TEMP attachment not used by a profile within this time may be swept.
ATTACHMENT_TTL = timedelta(hours=1)


def check_image(*, file_name: str, content_type: str, file_size: int) -> tuple[str, str]:
    """The trimmed file name and lower-cased type of an acceptable picture; INVALID_ARGUMENT otherwise."""
    name = bounded_text(file_name, field="fileName", maximum=MAX_FILE_NAME)
    if "/" in name or "\\" in name:
        raise InvalidField("fileName", "must not contain a path")
    kind = content_type.strip().lower()
    if kind not in IMAGE_TYPES:
        raise InvalidField("contentType", "must be image/jpeg, image/png, image/gif or image/webp")
    if not 0 < file_size <= MAX_IMAGE_BYTES:
        raise InvalidField("fileSize", f"must be between 1 and {MAX_IMAGE_BYTES} bytes")
    return name, kind


def profile_image_key(*, user_id: uuid.UUID, file_name: str) -> str:
    """Where a user's picture goes: under the user's own prefix, with a random part against collisions."""
    return f"profiles/{user_id}/{uuid.uuid4()}/{file_name}"


async def create_attachment(
    session: AsyncSession,
    *,
    caller_id: uuid.UUID,
    file_key: str,
    file_name: str,
    content_type: str,
    file_size: int,
    file_url: str,
) -> Attachment:
    """Record an uploaded picture as a TEMP attachment; the key must be under the caller's own prefix."""
    name, kind = check_image(file_name=file_name, content_type=content_type, file_size=file_size)
    key = file_key.strip()
    if not key.startswith(f"profiles/{caller_id}/") or ".." in key:
        raise InvalidField("fileKey", "must be a key this user was given for an upload")
    now = datetime.now(UTC)
    attachment = Attachment(
        entity_type=ENTITY_USER_PROFILE,
        status=ATTACHMENT_TEMP,
        file_key=key,
        file_name=name,
        file_url=file_url,
        file_size=file_size,
        content_type=kind,
        uploaded_by=caller_id,
        expires_at=now + ATTACHMENT_TTL,
        created_at=now,
        updated_at=now,
    )
    session.add(attachment)
    await session.flush()
    return attachment


async def set_profile_image(
    session: AsyncSession, *, caller_id: uuid.UUID, workspace_id: uuid.UUID, attachment_id: uuid.UUID
) -> UserProfile:
    """Use a TEMP attachment of the caller as the picture of its profile in a workspace, confirming it."""
    user = await get_or_raise(session, user_id=caller_id)
    statement = (
        select(Attachment)
        .where(Attachment.id == attachment_id, col(Attachment.deleted_at).is_(None))
        .with_for_update()
    )
    attachment = (await session.exec(statement)).first()
    # Someone else's attachment is reported as missing: its id says nothing to this caller.
    if attachment is None or attachment.uploaded_by != caller_id:
        raise NotFound("attachment not found", code="ATTACHMENT_NOT_FOUND")
    if attachment.status != ATTACHMENT_TEMP:
        raise Conflict("the attachment is already in use", code="ATTACHMENT_NOT_TEMPORARY")
    await check_profile_workspace(session, caller_id=caller_id, workspace_id=workspace_id)
    profile = await own_profile(session, user=user, workspace_id=workspace_id, nick_name=None)
    now = datetime.now(UTC)
    profile.profile_image_url = attachment.file_url
    profile.updated_at = now
    attachment.status = ATTACHMENT_CONFIRMED
    attachment.entity_id = profile.id
    attachment.expires_at = None
    attachment.updated_at = now
    session.add_all([profile, attachment])
    await session.flush()
    return profile
