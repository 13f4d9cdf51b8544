"""The ``jobs`` and ``job_files`` tables: a job's state, progress and results, and its files.

A job moves ``queued`` → ``running`` → ``succeeded`` | ``failed`` | ``cancelled``. It is recorded
and handed to the queue in one transaction, so a job is never lost between the two. A worker
stores each file's results and drops that file in one transaction too: a worker that takes a
job over finds exactly the files still to do, and ``settled`` progress to start from. Each run
of a job holds a lease; a worker that was only slow, not dead, finds its lease gone at its next
write and stops, so two runs never both write one job. Every
change of a row is announced on the ``rag_jobs`` channel (see ``events``).

Cancelling a queued job ends it at once; a running job gets ``cancel_requested`` and ends
``cancelled`` when its worker has stopped its work.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from procrastinate.exceptions import ConnectorException
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from app.core.errors import Conflict, DatabaseUnavailable, InvalidInput, NotFound
from app.jobs import queue
from app.retriever.connections import DRIVER_FAILURES, database_errors, database_failed
from app.retriever.embedded_postgres import describe_conninfo

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
MAX_PAGE = 200

JOB_COLUMNS = (
    "id, kind, status, payload, progress, results, metrics, error, cancel_requested,"
    " created_at, updated_at, pause_requested"
)


@dataclass(frozen=True, slots=True)
class Job:
    """One job as stored. ``results`` and ``error`` are plain JSON, shaped by the job's kind."""

    id: str
    kind: str
    status: JobStatus
    payload: dict[str, Any]
    progress: dict[str, int]
    results: list[dict[str, Any]]
    metrics: dict[str, Any]
    error: dict[str, Any] | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    pause_requested: bool
    """A training job asked to pause (it stays ``running``, idle between steps)."""

    @property
    def final(self) -> bool:
        """Whether the job has ended (and will not change again)."""
        return self.status in FINAL_STATUSES


@dataclass(frozen=True, slots=True)
class JobFile:
    """A file handed to a job: its bytes, or (refused before the job ran) its result already."""

    filename: str
    data: bytes | None = None
    result: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of jobs, newest first, the number of all of them, and where the next page starts."""

    jobs: list[Job]
    total: int
    next_cursor: str | None


class LeaseLost(Exception):
    """Another run holds the job now (this worker was taken for dead): this run must stop."""


def new_job_id() -> str:
    """A fresh job id."""
    return "job_" + uuid.uuid4().hex[:20]


def job_from_row(row: Sequence[Any]) -> Job:
    """A ``Job`` from a row of ``JOB_COLUMNS``."""
    return Job(*row)


def not_found(job_id: str) -> NotFound:
    """The error of an unknown job id."""
    return NotFound(f"No job with id {job_id!r}.", code="job_not_found", params={"id": job_id})


class JobStore:
    """Reads and writes jobs in one schema (the store's); safe to share between threads."""

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "rag",
        pool_max: int = 4,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self._conninfo = conninfo
        self._schema = schema
        self._where = describe_conninfo(conninfo)
        self._pool_max = pool_max
        self._connect_timeout_s = connect_timeout_s
        self._queue = queue.deferring_app()
        self._pool: ConnectionPool | None = None

    @property
    def conninfo(self) -> str:
        """The database the jobs live in."""
        return self._conninfo

    @property
    def schema(self) -> str:
        """The schema of the ``jobs`` table (and of the queue's tables)."""
        return self._schema

    def open(self) -> None:
        """Install the queue's tables if missing and open the pool. The ``jobs`` table comes
        with the store's migrations, so the store is opened first."""
        if self._pool is not None:
            return
        with self._translate_errors():
            with psycopg.connect(self._conninfo, **self._connect_kwargs()) as conn:
                queue.install_schema(conn, self._schema)
            pool = ConnectionPool(
                self._conninfo,
                min_size=1,
                max_size=self._pool_max,
                kwargs=self._connect_kwargs(),
                check=ConnectionPool.check_connection,
                timeout=self._connect_timeout_s,
                reconnect_timeout=max(self._connect_timeout_s, 2.0),
                name=f"rag-jobs-{self._schema}",
                open=False,
            )
            pool.open()
        self._pool = pool

    def close(self) -> None:
        """Close the pool; the store can be opened again."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # ----- the API's side --------------------------------------------------------------------

    def create(
        self,
        kind: str,
        payload: dict[str, Any],
        files: Sequence[JobFile] = (),
        *,
        total: int | None = None,
        lock: str | None = None,
        job_id: str | None = None,
    ) -> Job:
        """Record a job with its files and hand it to the queue, in one transaction.

        ``progress.total`` starts as ``total`` or the number of files; a kind that learns how many
        items a file holds counts them in when it does. Jobs with the same ``lock`` run in turn.
        ``job_id`` is for a kind whose payload names the job's id (its folder); see ``new_job_id``.
        """
        job_id = job_id or new_job_id()
        progress = Jsonb({"done": 0, "total": len(files) if total is None else total})
        with self.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO jobs (id, kind, status, payload, progress, settled)"
                " VALUES (%s, %s, 'queued', %s, %s, %s)",
                (job_id, kind, Jsonb(payload), progress, progress),
            )
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO job_files (job_id, position, filename, data, result)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [
                        (
                            job_id,
                            position,
                            file.filename,
                            file.data,
                            Jsonb(file.result) if file.result is not None else None,
                        )
                        for position, file in enumerate(files)
                    ],
                )
            queue_job_id = queue.defer(self._queue, conn, kind=kind, job_id=job_id, lock=lock)
            row = conn.execute(
                f"UPDATE jobs SET queue_job_id = %s WHERE id = %s RETURNING {JOB_COLUMNS}",
                (queue_job_id, job_id),
            ).fetchone()
        assert row is not None
        return job_from_row(row)

    def defer_existing(
        self, conn: psycopg.Connection, kind: str, job_id: str, *, lock: str | None = None
    ) -> int:
        """Hand a recorded job to the queue again, within ``conn``'s transaction."""
        return queue.defer(self._queue, conn, kind=kind, job_id=job_id, lock=lock)

    def get(self, job_id: str) -> Job | None:
        """The job, or ``None``."""
        with self.connection() as conn:
            row = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,)
            ).fetchone()
        return job_from_row(row) if row is not None else None

    def require(self, job_id: str) -> Job:
        """The job, or ``NotFound`` (``job_not_found``)."""
        job = self.get(job_id)
        if job is None:
            raise not_found(job_id)
        return job

    def page(self, *, limit: int = 50, cursor: str | None = None) -> JobPage:
        """Jobs newest first, ``limit`` of them, after ``cursor`` (a page's ``next_cursor``)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be 1 to {MAX_PAGE}.")
        if cursor is not None and not cursor.isdigit():
            raise InvalidInput("The cursor is not one a page of jobs gave.", code="invalid_cursor")
        before = int(cursor) if cursor is not None else None
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT {JOB_COLUMNS}, seq FROM jobs"
                " WHERE %(before)s::bigint IS NULL OR seq < %(before)s"
                " ORDER BY seq DESC LIMIT %(limit)s",
                {"before": before, "limit": limit + 1},
            ).fetchall()
            total_row = conn.execute("SELECT count(*) FROM jobs").fetchone()
        assert total_row is not None
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = str(rows[-1][-1]) if more else None
        return JobPage([job_from_row(r[:-1]) for r in rows], int(total_row[0]), next_cursor)

    def cancel(self, job_id: str) -> Job:
        """End a queued job now, or ask the worker of a running one to stop; ``Conflict``
        (``job_finished``) when it already succeeded or failed. Cancelling twice is harmless."""
        with self.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT status, queue_job_id FROM jobs WHERE id = %s FOR UPDATE", (job_id,)
            ).fetchone()
            if row is None:
                raise not_found(job_id)
            status, queue_job_id = row
            if status in ("succeeded", "failed"):
                raise Conflict(
                    f"Job {job_id} has already {status}; there is nothing to cancel.",
                    code="job_finished",
                    params={"id": job_id, "status": status},
                )
            if status == "queued":
                conn.execute(
                    "UPDATE jobs SET status = 'cancelled', cancel_requested = true,"
                    " updated_at = now() WHERE id = %s",
                    (job_id,),
                )
                conn.execute("DELETE FROM job_files WHERE job_id = %s", (job_id,))
                if queue_job_id is not None:
                    queue.withdraw(self._queue, conn, queue_job_id)
            elif status == "running":
                conn.execute(
                    "UPDATE jobs SET cancel_requested = true, updated_at = now() WHERE id = %s",
                    (job_id,),
                )
            job = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,)
            ).fetchone()
        assert job is not None
        return job_from_row(job)

    def live_workers(self, within_s: float) -> int:
        """Workers, on any machine, whose last heartbeat is at most ``within_s`` old."""
        with self.connection() as conn:
            return queue.live_workers(conn, within_s)

    # ----- the worker's side -----------------------------------------------------------------

    def claim(self, job_id: str) -> tuple[Job, str] | None:
        """Mark the job running (again, after a takeover) with its settled progress, under a new
        lease; ``None`` when it has ended meanwhile. A job cancelled before it started ends here.
        Only the holder of the latest lease may write the job (``report``, ``settle_file``...)."""
        lease = uuid.uuid4().hex
        with self.connection() as conn, conn.transaction():
            row = conn.execute(
                "UPDATE jobs SET status = 'running', progress = settled, runs = runs + 1,"
                " lease = %s, updated_at = now() WHERE id = %s AND status IN ('queued', 'running')"
                f" RETURNING {JOB_COLUMNS}",
                (lease, job_id),
            ).fetchone()
        if row is None:
            return None
        job = job_from_row(row)
        if job.cancel_requested:
            self.finish(job_id, lease, "cancelled")
            return None
        return job, lease

    def pending_files(self, job_id: str) -> list[int]:
        """Positions of the job's files whose results are not stored yet, in order."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT position FROM job_files WHERE job_id = %s ORDER BY position", (job_id,)
            ).fetchall()
        return [row[0] for row in rows]

    def file(self, job_id: str, position: int) -> JobFile:
        """One of the job's files, bytes included."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT filename, data, result FROM job_files WHERE job_id = %s AND position = %s",
                (job_id, position),
            ).fetchone()
        if row is None:
            raise NotFound(f"Job {job_id} has no file at position {position}.")
        filename, data, result = row
        return JobFile(filename, bytes(data) if data is not None else None, result)

    def report(self, job_id: str, lease: str, done: int, total: int) -> bool:
        """Record progress; whether the job is to be cancelled. ``LeaseLost`` when another run
        holds the job now."""
        with self.connection() as conn:
            row = conn.execute(
                "UPDATE jobs SET progress = %s, updated_at = now()"
                " WHERE id = %s AND status = 'running' AND lease = %s RETURNING cancel_requested",
                (Jsonb({"done": done, "total": total}), job_id, lease),
            ).fetchone()
        if row is None:
            raise LeaseLost(job_id)
        return bool(row[0])

    def settle_file(
        self,
        job_id: str,
        lease: str,
        position: int,
        results: list[dict[str, Any]],
        done: int,
        total: int,
    ) -> None:
        """Store one file's results and progress and drop the file, in one transaction."""
        progress = Jsonb({"done": done, "total": total})
        with self.connection() as conn, conn.transaction():
            updated = conn.execute(
                "UPDATE jobs SET results = results || %s, progress = %s, settled = %s,"
                " updated_at = now() WHERE id = %s AND status = 'running' AND lease = %s",
                (Jsonb(results), progress, progress, job_id, lease),
            )
            if updated.rowcount == 0:
                raise LeaseLost(job_id)
            conn.execute(
                "DELETE FROM job_files WHERE job_id = %s AND position = %s", (job_id, position)
            )

    def release(self, job_id: str, lease: str) -> None:
        """Hand a running job back to the queue (its worker is stopping)."""
        with self.connection() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'queued', progress = settled, lease = NULL,"
                " updated_at = now() WHERE id = %s AND status = 'running' AND lease = %s",
                (job_id, lease),
            )

    def finish(
        self, job_id: str, lease: str, status: JobStatus, error: dict[str, Any] | None = None
    ) -> None:
        """End the job with ``status`` (and ``error``) and delete whatever files it still has."""
        with self.connection() as conn, conn.transaction():
            updated = conn.execute(
                "UPDATE jobs SET status = %s, error = %s, lease = NULL, updated_at = now()"
                " WHERE id = %s AND status = 'running' AND lease = %s",
                (status, Jsonb(error) if error is not None else None, job_id, lease),
            )
            if updated.rowcount == 0:
                raise LeaseLost(job_id)
            conn.execute("DELETE FROM job_files WHERE job_id = %s", (job_id,))

    # ----- plumbing --------------------------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        return {
            "connect_timeout": max(2, round(self._connect_timeout_s)),
            "application_name": "rag-jobs",
            # The queue's functions and tables are found by name, in the store's schema.
            "options": f"-c search_path={self._schema}",
        }

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in the store's schema, its failures as ``DatabaseUnavailable``."""
        if self._pool is None:
            raise DatabaseUnavailable("The job store is not open.")
        with self._translate_errors(), self._pool.connection() as conn:
            yield conn

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            with database_errors(self._where, connect_timeout_s=self._connect_timeout_s):
                yield
        # The queue wraps the driver's errors in its own.
        except ConnectorException as exc:
            cause = exc.__cause__
            if isinstance(cause, DRIVER_FAILURES):
                raise database_failed(self._where, cause) from exc
            raise
