"""Files attached to projects, boards and comments: the upload lifecycle and the clean-up; no protobuf.

The lifecycle, as a small state machine on ``attachments.status``:

- ``CreatePresignedUpload`` inserts a TEMP row (``expires_at`` = now + ``temp_upload_seconds``) and
  hands out a presigned PUT URL for its key; the client PUTs the bytes straight to S3.
- ``CreateAttachment`` (the web client's second step) returns that same TEMP row for the key. The
  original inserted a second row for the object, so the two rows' clean-ups fought over one file.
- :func:`confirm`, inside the transaction that creates or updates a project, board or comment, turns
  TEMP rows into CONFIRMED ones of that entity (``expires_at`` cleared).
- Deleting an attachment or its entity *releases* its rows (:func:`release`): they become TEMP rows
  that expired already, in the same transaction as the delete. After the commit :func:`purge` removes
  the objects and then the rows; whatever fails there is still an expired TEMP row, which the periodic
  :func:`cleanup_expired` retries. So a file never outlives its row unnoticed, and a row is never
  removed before its file.

The removal itself is the kit's (``mesh.remove_expired_uploads``), shared with the user service's
profile pictures; this module says which rows are released and when.

An expired TEMP row is on its way out: it cannot be confirmed, downloaded or registered again. Both
removal paths lock the rows they work on (``FOR UPDATE SKIP LOCKED``) for as long as they delete the
objects, so a confirmation racing with them either waits and finds the row gone or holds the lock and
is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple

from sqlalchemy import ColumnElement, and_, inspect, or_
from sqlalchemy import select as sql_select
from sqlalchemy import update as sql_update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from mesh import (
    Database,
    Forbidden,
    InvalidField,
    NotFound,
    ObjectStore,
    remove_expired_uploads,
    sweep_expired_uploads,
)
from services.board.access import Memberships, project_role, see_board, see_comment, see_project
from services.board.models import (
    ATTACHMENT_CONFIRMED,
    ATTACHMENT_TEMP,
    ENTITY_BOARD,
    ENTITY_COMMENT,
    ENTITY_PROJECT,
    MANAGER_ROLES,
    Attachment,
    Comment,
    Project,
)

log = logging.getLogger("wealist.board.attachments")

MAX_FILE_SIZE: Final = 50 * 1024 * 1024  # 52,428,800 bytes: the contract's "50MB"
MAX_FILE_NAME: Final = 255
MAX_CONTENT_TYPE: Final = 100
KEY_PREFIX: Final = "board/"
# The folder of each entity type under the key prefix.
ENTITY_FOLDERS: Final = {ENTITY_BOARD: "boards", ENTITY_COMMENT: "comments", ENTITY_PROJECT: "projects"}

# The contract's allow-list, in two families: a file's content type and its extension must both be in
# the same family (an image type with a document extension is refused, and the other way round).
IMAGE_TYPES: Final = frozenset(
    {"image/jpeg", "image/jpg", "image/png", "image/gif", "image/webp", "image/svg+xml", "image/heic"}
)
IMAGE_EXTENSIONS: Final = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".svg", ".heic"})
DOCUMENT_TYPES: Final = frozenset(
    {
        "application/pdf",
        "text/plain",
        "text/markdown",
        "text/csv",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/zip",
        "application/x-zip-compressed",
        "application/json",
    }
)
DOCUMENT_EXTENSIONS: Final = frozenset(
    {".pdf", ".txt", ".md", ".csv", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".zip", ".json"}
)
FAMILIES: Final = ((IMAGE_TYPES, IMAGE_EXTENSIONS), (DOCUMENT_TYPES, DOCUMENT_EXTENSIONS))

FILE_TOO_LARGE: Final = "FILE_TOO_LARGE"
INVALID_FILE_TYPE: Final = "INVALID_FILE_TYPE"

# The contract's messages.
INVALID_ENTITY_TYPE: Final = "Invalid entity type (Entity type must be BOARD, COMMENT, or PROJECT)"
UNSUPPORTED_FILE_TYPE: Final = (
    "Unsupported file type (Supported types: "
    + ", ".join(extension[1:] for extension in sorted(IMAGE_EXTENSIONS) + sorted(DOCUMENT_EXTENSIONS))
    + ")"
)
NO_EXTENSION: Final = "Invalid file name (File must have an extension)"
INVALID_FILE_KEY: Final = "Invalid file key format"
ATTACHMENTS_NOT_FOUND: Final = "One or more attachments not found"
NOT_TEMPORARY: Final = "Attachment is not in temporary status and cannot be reused"
ENTITY_MISMATCH: Final = "Attachment entity type does not match"
ATTACHMENT_NOT_FOUND: Final = "Attachment not found"
NO_DELETE_PERMISSION: Final = "You do not have permission to delete this attachment"


def current_time() -> datetime:
    """The time stamps of uploads and releases."""
    return datetime.now(UTC)


def _expired(row: Attachment, now: datetime) -> bool:
    return row.status == ATTACHMENT_TEMP and row.expires_at is not None and row.expires_at <= now


# --- validation -------------------------------------------------------------------------------------------


def parse_entity_type(value: str) -> str:
    """BOARD, PROJECT or COMMENT from any case; INVALID_ARGUMENT naming entityType otherwise."""
    entity_type = value.strip().upper()
    if entity_type not in ENTITY_FOLDERS:
        raise InvalidField("entityType", INVALID_ENTITY_TYPE)
    return entity_type


def check_file(*, file_name: str, file_size: int, content_type: str) -> tuple[str, str, str]:
    """The trimmed name, the lower-cased content type and the extension (original case) of a file.

    Raises INVALID_ARGUMENT naming the field at fault: ``fileSize`` (code ``FILE_TOO_LARGE`` above
    50 MiB), ``contentType`` or ``fileName`` (code ``INVALID_FILE_TYPE`` outside the allow-list).
    """
    if file_size <= 0:
        raise InvalidField("fileSize", "File size must be greater than 0")
    if file_size > MAX_FILE_SIZE:
        raise InvalidField("fileSize", "File size exceeds 50MB limit", code=FILE_TOO_LARGE)
    name = file_name.strip()
    if not name:
        raise InvalidField("fileName", "File name is required")
    if len(name) > MAX_FILE_NAME:
        raise InvalidField("fileName", f"must be at most {MAX_FILE_NAME} characters")
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or not suffix:
        raise InvalidField("fileName", NO_EXTENSION, code=INVALID_FILE_TYPE)
    extension = "." + suffix
    # Parameters such as "; charset=utf-8" do not change what the file is.
    kind = content_type.split(";", 1)[0].strip().lower()
    if len(kind) > MAX_CONTENT_TYPE:
        raise InvalidField("contentType", UNSUPPORTED_FILE_TYPE, code=INVALID_FILE_TYPE)
    if not any(kind in types and extension.lower() in extensions for types, extensions in FAMILIES):
        raise InvalidField("contentType", UNSUPPORTED_FILE_TYPE, code=INVALID_FILE_TYPE)
    return name, kind, extension


def object_key(
    *, entity_type: str, workspace_id: uuid.UUID, attachment_id: uuid.UUID, at: datetime, extension: str
) -> str:
    """``board/{boards|comments|projects}/{workspaceId}/{YYYY}/{MM}/{uuid}_{unixSeconds}{ext}``."""
    folder = ENTITY_FOLDERS[entity_type]
    name = f"{attachment_id}_{int(at.timestamp())}{extension}"
    return f"{KEY_PREFIX}{folder}/{workspace_id}/{at:%Y}/{at:%m}/{name}"


# --- what the servicers show ------------------------------------------------------------------------------


class InlineFile(NamedTuple):
    """A confirmed attachment as a project, board or comment embeds it (a plain row)."""

    attachment_id: uuid.UUID
    file_name: str
    file_key: str
    file_size: int
    content_type: str
    uploaded_by: uuid.UUID
    created_at: datetime


# The table's columns: :func:`inline` reads plain rows, without the ORM's instance loading.
_FILES = inspect(Attachment).local_table.c


# --- the functions other areas call -----------------------------------------------------------------------


async def confirm(
    session: AsyncSession,
    *,
    ids: Sequence[uuid.UUID],
    entity_type: str,
    entity_id: uuid.UUID,
    project: Project,
    user_id: uuid.UUID,
    store: ObjectStore,
) -> None:
    """Attach TEMP uploads to a project, board or comment, inside the caller's transaction.

    Every id must be a live TEMP upload of ``user_id`` in the project's workspace, of ``entity_type``;
    otherwise INVALID_ARGUMENT naming ``attachmentIds`` with the contract's message (another user's or
    another workspace's upload reads as not found). Its object must be in the bucket with the size and
    type declared for it, else INVALID_ARGUMENT naming ``attachmentIds`` too; ``store`` checks it and makes
    S3 serve it as a download of that type from then on. Never commits; an empty ``ids`` does nothing.
    """
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return
    # Locked, so the clean-up cannot remove a row between this check and the caller's commit.
    statement = select(Attachment).where(col(Attachment.id).in_(wanted)).with_for_update()
    rows = list((await session.exec(statement)).all())
    now = current_time()
    if len(rows) != len(wanted) or any(
        row.uploaded_by != user_id or row.workspace_id != project.workspace_id or _expired(row, now)
        for row in rows
    ):
        raise InvalidField("attachmentIds", ATTACHMENTS_NOT_FOUND)
    if any(row.status != ATTACHMENT_TEMP for row in rows):
        raise InvalidField("attachmentIds", NOT_TEMPORARY)
    if any(row.entity_type != entity_type.upper() for row in rows):
        raise InvalidField("attachmentIds", ENTITY_MISMATCH)
    problems = await asyncio.gather(
        *(
            store.accept_upload(
                row.file_key, size=row.file_size, content_type=row.content_type, file_name=row.file_name
            )
            for row in rows
        )
    )
    for problem in problems:
        if problem is not None:
            raise InvalidField("attachmentIds", problem)
    for row in rows:
        row.status = ATTACHMENT_CONFIRMED
        row.entity_id = entity_id
        row.project_id = project.id
        row.expires_at = None
        row.updated_at = now
        session.add(row)
    await session.flush()


async def inline_files(
    session: AsyncSession, *, entity_type: str, entity_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[InlineFile]]:
    """The confirmed attachments of each entity (every id is a key), newest first, in one query."""
    found: dict[uuid.UUID, list[InlineFile]] = {entity: [] for entity in entity_ids}
    if not found:
        return found
    statement = (
        sql_select(
            _FILES.entity_id,
            _FILES.id,
            _FILES.file_name,
            _FILES.file_key,
            _FILES.file_size,
            _FILES.content_type,
            _FILES.uploaded_by,
            _FILES.created_at,
        )
        .where(
            _FILES.entity_type == entity_type.upper(),
            _FILES.entity_id.in_(list(found)),
            _FILES.status == ATTACHMENT_CONFIRMED,
        )
        .order_by(_FILES.created_at.desc(), _FILES.id.desc())
    )
    # A Core statement does not autoflush as an ORM query does: pending changes are flushed first.
    await session.flush()
    rows = await (await session.connection()).execute(statement)
    for entity_id, *columns in rows:
        if entity_id is not None:
            found[entity_id].append(InlineFile(*columns))
    return found


async def release(
    session: AsyncSession,
    *,
    project_id: uuid.UUID | None = None,
    board_ids: Sequence[uuid.UUID] = (),
    comment_ids: Sequence[uuid.UUID] = (),
) -> list[uuid.UUID]:
    """Turn the attachments of entities about to be deleted into expired TEMP rows; returns their ids.

    Call it in the transaction that deletes the entities, before deleting them (a board's comments are
    found through the ``comments`` table), and :func:`purge` the ids after the commit. Covers every
    attachment of the project (its boards' and comments' too), of the boards and their comments, and of
    the comments.
    """
    conditions: list[ColumnElement[bool]] = []
    if project_id is not None:
        conditions.append(col(Attachment.project_id) == project_id)
    if board_ids:
        boards = list(board_ids)
        conditions.append(
            and_(col(Attachment.entity_type) == ENTITY_BOARD, col(Attachment.entity_id).in_(boards))
        )
        comments_of_boards = select(col(Comment.id)).where(col(Comment.board_id).in_(boards))
        conditions.append(
            and_(
                col(Attachment.entity_type) == ENTITY_COMMENT,
                col(Attachment.entity_id).in_(comments_of_boards),
            )
        )
    if comment_ids:
        conditions.append(
            and_(
                col(Attachment.entity_type) == ENTITY_COMMENT,
                col(Attachment.entity_id).in_(list(comment_ids)),
            )
        )
    if not conditions:
        return []
    now = current_time()
    statement = (
        sql_update(Attachment)
        .where(col(Attachment.status) == ATTACHMENT_CONFIRMED, or_(*conditions))
        .values(status=ATTACHMENT_TEMP, entity_id=None, project_id=None, expires_at=now, updated_at=now)
        .returning(col(Attachment.id))
    )
    result = await session.exec(statement)
    return list(result.scalars().all())


async def purge(database: Database, store: ObjectStore, ids: Sequence[uuid.UUID]) -> None:
    """After the commit of a release: delete the objects, then the rows; failures stay for the clean-up.

    Never raises (the change it follows is committed already): a failure is logged.
    """
    if not ids:
        return
    try:
        await remove_expired_uploads(database, store, Attachment, ids=list(dict.fromkeys(ids)))
    except Exception:
        # The rows are expired TEMP rows by now: the kit's clean-up job retries them.
        log.warning("purging %d attachments failed; the clean-up job will retry", len(ids), exc_info=True)


async def cleanup_expired(database: Database, store: ObjectStore) -> int:
    """Remove every TEMP upload whose time ran out: its object from S3, then its row. Returns the count.

    The kit's clean-up (``Runtime.sweep_uploads``) runs this periodically; a row whose object could not
    be deleted stays for the next run.
    """
    return await sweep_expired_uploads(database, store, Attachment)


# --- what the API does ------------------------------------------------------------------------------------


async def visible(row: Attachment | None, *, user_id: uuid.UUID, memberships: Memberships) -> Attachment:
    """The attachment if the user may see it, else NOT_FOUND.

    A confirmed file is seen by the members of its workspace; an upload not yet confirmed only by
    its uploader (nobody else knows of it), and an expired one by nobody (it is being removed).
    """
    if row is None or _expired(row, current_time()):
        raise NotFound(ATTACHMENT_NOT_FOUND)
    if row.status == ATTACHMENT_TEMP and row.uploaded_by != user_id:
        raise NotFound(ATTACHMENT_NOT_FOUND)
    if await memberships.role(row.workspace_id, user_id) is None:
        raise NotFound(ATTACHMENT_NOT_FOUND)
    return row


async def create_upload(
    session: AsyncSession,
    *,
    attachment_id: uuid.UUID,
    entity_type: str,
    workspace_id: uuid.UUID,
    file_key: str,
    file_name: str,
    file_size: int,
    content_type: str,
    user_id: uuid.UUID,
    now: datetime,
    lifetime_seconds: int,
) -> None:
    """Record a TEMP upload that expires ``lifetime_seconds`` after ``now`` (not committed)."""
    session.add(
        Attachment(
            id=attachment_id,
            entity_type=entity_type,
            workspace_id=workspace_id,
            status=ATTACHMENT_TEMP,
            file_key=file_key,
            file_name=file_name,
            file_size=file_size,
            content_type=content_type,
            uploaded_by=user_id,
            expires_at=now + timedelta(seconds=lifetime_seconds),
            created_at=now,
            updated_at=now,
        )
    )


async def get_own_upload(
    session: AsyncSession, *, file_key: str, entity_type: str, user_id: uuid.UUID, memberships: Memberships
) -> Attachment:
    """The caller's live TEMP upload of ``file_key``, of ``entity_type``; NOT_FOUND otherwise."""
    row = await session.scalar(select(Attachment).where(col(Attachment.file_key) == file_key))
    if row is None or row.uploaded_by != user_id or row.status != ATTACHMENT_TEMP:
        raise NotFound(ATTACHMENT_NOT_FOUND)
    row = await visible(row, user_id=user_id, memberships=memberships)
    if row.entity_type != entity_type:
        raise InvalidField("entityType", ENTITY_MISMATCH)
    return row


async def get_visible(
    session: AsyncSession, *, attachment_id: uuid.UUID, user_id: uuid.UUID, memberships: Memberships
) -> Attachment:
    """An attachment the user may see (see :func:`visible`)."""
    return await visible(
        await session.get(Attachment, attachment_id), user_id=user_id, memberships=memberships
    )


async def delete_attachment(
    session: AsyncSession, *, attachment_id: uuid.UUID, user_id: uuid.UUID, memberships: Memberships
) -> None:
    """Release an attachment (its uploader, or its project's OWNER or an ADMIN); purge it after the commit."""
    statement = select(Attachment).where(col(Attachment.id) == attachment_id).with_for_update()
    row = await visible(await session.scalar(statement), user_id=user_id, memberships=memberships)
    if row.uploaded_by != user_id:
        role = None
        if row.project_id is not None:
            role = await project_role(session, row.project_id, user_id)
        if role not in MANAGER_ROLES:
            raise Forbidden(NO_DELETE_PERMISSION)
    # Released, not deleted: if the purge after the commit fails, the clean-up job finishes it.
    now = current_time()
    row.status = ATTACHMENT_TEMP
    row.entity_id = None
    row.project_id = None
    row.expires_at = now
    row.updated_at = now
    session.add(row)


async def list_attachments(
    session: AsyncSession, *, field: str, entity_id: uuid.UUID, user_id: uuid.UUID, memberships: Memberships
) -> list[Attachment]:
    """The confirmed attachments of the project, board or comment (``field`` names which), newest first."""
    if field == "projectId":
        entity_type = ENTITY_PROJECT
        await see_project(session, memberships, entity_id, user_id)
    elif field == "boardId":
        entity_type = ENTITY_BOARD
        await see_board(session, memberships, entity_id, user_id)
    else:
        entity_type = ENTITY_COMMENT
        await see_comment(session, memberships, entity_id, user_id)
    statement = (
        select(Attachment)
        .where(
            col(Attachment.entity_type) == entity_type,
            col(Attachment.entity_id) == entity_id,
            col(Attachment.status) == ATTACHMENT_CONFIRMED,
        )
        .order_by(col(Attachment.created_at).desc(), col(Attachment.id).desc())
    )
    return list((await session.exec(statement)).all())
