"""Profile pictures uploaded but never used are removed with their objects (the kit's clean-up)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from minio.error import S3Error
from sqlalchemy import update
from sqlmodel import col, select

from devstack import StackInfo
from mesh import Database
from services.user.models import Attachment
from services.user.settings import UserSettings
from tests.support import USER, Person, extra_service, login

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


async def _temporary_picture(client: httpx.AsyncClient, who: Person) -> tuple[uuid.UUID, str]:
    """A registered, unused picture of ``who``: (attachment id, object key)."""
    file = {"fileName": "me.png", "contentType": "image/png", "fileSize": len(PNG)}
    slot = await client.post(f"{USER}/api/profiles/me/image/presigned-url", headers=who.headers, json=file)
    assert slot.status_code == 200, slot.text
    key = slot.json()["fileKey"]
    async with httpx.AsyncClient(timeout=15, trust_env=False) as s3:
        put = await s3.put(slot.json()["uploadUrl"], content=PNG, headers={"Content-Type": "image/png"})
    assert put.status_code == 200, put.text
    registered = await client.post(
        f"{USER}/api/profiles/me/image/attachment", headers=who.headers, json={**file, "fileKey": key}
    )
    assert registered.status_code == 201, registered.text
    return uuid.UUID(registered.json()["attachmentId"]), key


async def _object_exists(stack: StackInfo, key: str) -> bool:
    def stat() -> str | None:
        try:
            stack.s3.client().stat_object(stack.s3.bucket, key)
        except S3Error as error:
            return error.code
        return None

    missing = await asyncio.to_thread(stat)
    # Anything but "not there" (a server error, say) must not pass for a deleted object.
    assert missing in {None, "NoSuchKey", "ResourceNotFound"}, missing
    return missing is None


async def _rows(database: Database, ids: list[uuid.UUID]) -> int:
    async with database.unit_of_work() as session:
        return len((await session.exec(select(Attachment).where(col(Attachment.id).in_(ids)))).all())


async def test_expired_unused_pictures_are_removed_with_their_objects(
    client: httpx.AsyncClient, stack: StackInfo
) -> None:
    person = await login(client, "pic-sweep")
    expired, expired_key = await _temporary_picture(client, person)
    kept, kept_key = await _temporary_picture(client, person)
    database = Database(UserSettings(database_url=stack.database_url).service_database_url())
    try:
        # An hour is the pictures' time to live: this one's ran out already.
        async with database.unit_of_work() as session:
            await session.exec(
                update(Attachment)
                .where(col(Attachment.id) == expired)
                .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
            )
        with extra_service(stack, "user", {"WEALIST_CLEANUP_INTERVAL_SECONDS": "1"}) as user:
            for _ in range(100):
                if not await _rows(database, [expired]):
                    break
                await asyncio.sleep(0.2)
            assert await _rows(database, [expired]) == 0, user.output()
        assert not await _object_exists(stack, expired_key)
        assert await _rows(database, [kept]) == 1
        assert await _object_exists(stack, kept_key)
    finally:
        await database.close()
