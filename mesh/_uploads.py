"""The clean-up of uploads that were never confirmed, for every service that keeps files.

A service records an upload as a TEMP row (``status``, ``expires_at``, ``file_key``) before the browser
PUTs the bytes; confirming it clears ``expires_at``. A TEMP row whose time ran out is removed here: its
object from S3 first, then the row, so no object outlives its row unnoticed. A row whose object could not
be deleted stays, and the next round retries it.

The rows stay locked (``FOR UPDATE SKIP LOCKED``) while their objects are deleted, so a confirmation
racing with the clean-up either waits and finds the row gone or holds the lock and is skipped; two
replicas' clean-ups skip each other's rows.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Table, delete, inspect, select

from mesh._db import Database
from mesh._objects import ObjectStore

log = logging.getLogger("wealist.mesh.uploads")

TEMPORARY: Final = "TEMP"
# Rows one round removes at most; a sweep loops until a round finds fewer.
SWEEP_BATCH: Final = 500
# The first sweep runs this soon after start (or after one interval, when that is shorter).
FIRST_SWEEP_SECONDS: Final = 5.0


def _table(model: type[Any]) -> Table:
    table = inspect(model).local_table
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


async def remove_expired_uploads(
    database: Database,
    store: ObjectStore,
    model: type[Any],
    *,
    ids: Sequence[uuid.UUID] | None = None,
    limit: int | None = None,
) -> tuple[int, int]:
    """Delete expired TEMP rows of ``model`` (of ``ids``, when given) and their objects.

    Returns (rows selected, rows removed); the difference is objects S3 would not delete.
    """
    table = _table(model)
    columns = table.c
    async with database.unit_of_work() as session:
        statement = select(columns.id, columns.file_key).where(
            columns.status == TEMPORARY, columns.expires_at <= datetime.now(UTC)
        )
        if ids is not None:
            statement = statement.where(columns.id.in_(list(ids)))
        statement = statement.order_by(columns.expires_at).with_for_update(skip_locked=True)
        if limit is not None:
            statement = statement.limit(limit)
        connection = await session.connection()
        rows = (await connection.execute(statement)).all()
        if not rows:
            return 0, 0
        failed = set(await store.delete([key for _, key in rows]))
        if failed:
            log.warning("could not delete %d objects from S3; their rows stay for the next run", len(failed))
        gone = [row_id for row_id, key in rows if key not in failed]
        if gone:
            await connection.execute(delete(table).where(columns.id.in_(gone)))
    return len(rows), len(gone)


async def sweep_expired_uploads(database: Database, store: ObjectStore, model: type[Any]) -> int:
    """Remove every expired TEMP upload of ``model``, in batches; the number removed."""
    total = 0
    while True:
        selected, removed = await remove_expired_uploads(database, store, model, limit=SWEEP_BATCH)
        total += removed
        if selected < SWEEP_BATCH or removed == 0:
            return total


async def sweep_uploads_forever(
    database: Database, store: ObjectStore, model: type[Any], *, interval: float
) -> None:
    """:func:`sweep_expired_uploads` shortly after start, then every ``interval`` seconds.

    Errors are logged and the loop goes on (S3 or the database may be down for a while); only
    cancellation, at shutdown, ends it.
    """
    delay = min(FIRST_SWEEP_SECONDS, interval)
    while True:
        await asyncio.sleep(delay)
        delay = interval
        try:
            removed = await sweep_expired_uploads(database, store, model)
        except Exception:
            log.exception("the upload clean-up failed; next try in %.0f s", interval)
            continue
        if removed:
            log.info("the upload clean-up removed %d expired %s rows", removed, model.__name__)
