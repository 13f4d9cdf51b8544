"""Following one job as it changes: PostgreSQL LISTEN/NOTIFY on the ``rag_jobs`` channel.

Every insert or update of a job row notifies ``<schema>.<id>`` (a trigger of the migration), so
a follower reads the job only when it changed, wherever the worker runs. Each follower has a
connection of its own while it follows; a quiet spell yields ``None`` so that the caller can
keep its client's connection alive (and notice when the client has gone).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg

from app.core.errors import DatabaseUnavailable
from app.jobs.store import JOB_COLUMNS, Job, job_from_row, not_found

CHANNEL = "rag_jobs"


async def follow(
    conninfo: str, schema: str, job_id: str, *, quiet_s: float = 15.0
) -> AsyncIterator[Job | None]:
    """The job now, then each time it changes, until it has ended (the last one yielded);
    ``None`` after ``quiet_s`` seconds without a change. ``NotFound`` for an unknown id."""
    key = f"{schema}.{job_id}"
    try:
        conn = await psycopg.AsyncConnection.connect(
            conninfo,
            autocommit=True,
            application_name="rag-job-events",
            options=f"-c search_path={schema}",
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"Following job {job_id} failed: {exc}") from exc
    async with conn:
        try:
            # Listening before the first read: a change made in between is not missed.
            await conn.execute(f"LISTEN {CHANNEL}")
            seen = None
            while True:
                cursor = await conn.execute(
                    f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,)
                )
                row = await cursor.fetchone()
                if row is None:
                    raise not_found(job_id)
                job = job_from_row(row)
                if (job.updated_at, job.status, job.progress) != seen:
                    seen = (job.updated_at, job.status, job.progress)
                    yield job
                if job.final:
                    return
                async for note in conn.notifies(timeout=quiet_s):
                    if note.payload == key:
                        break
                else:
                    yield None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise DatabaseUnavailable(f"Following job {job_id} failed: {exc}") from exc


async def wait_for_end(conninfo: str, schema: str, job_id: str) -> Job:
    """The job once it has ended."""
    last: Job | None = None
    async for job in follow(conninfo, schema, job_id):
        last = job or last
    assert last is not None and last.final
    return last
