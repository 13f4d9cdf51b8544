"""The task queue: procrastinate, with its tables in the store's schema.

procrastinate was chosen over pgqueuer because it is built on psycopg 3 (its connectors are
psycopg pools, so the queue runs on the same driver as the store), defers a job inside the
caller's transaction (``connection=``), keeps workers' heartbeats and finds the jobs of silent
workers (``get_stalled_jobs``), and ships its schema and migrations as versioned SQL.

Each job kind has its own task and queue (``ingest``, ``finetune``), so a kind can have workers of
its own: a month-long training run never holds the worker that indexes uploads. A task only carries
our job id: everything else is in the ``jobs`` table. A job may carry a lock (procrastinate's
``lock``): jobs with the same lock run one after the other, which is how training jobs take turns
on a device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import procrastinate
import psycopg
from procrastinate.jobs import Job as QueueJob
from procrastinate.retry import BaseRetryStrategy, RetryDecision
from procrastinate.schema import SchemaManager
from psycopg import sql

from app.core.errors import DatabaseUnavailable

KINDS = ("ingest", "finetune")
# Housekeeping tasks (deleting old jobs) have a queue of their own, served by every worker.
MAINTENANCE_QUEUE = "maintenance"
# A periodic task missed by at most this much is run when a worker starts: with the hourly
# housekeeping, each worker start runs it once.
PERIODIC_MAX_DELAY_S = 3600
# The lock that migrations take: the queue's tables are installed in turn with them.
_LOCK_NAME = "rag.migrate"
_SCHEMA_MARK = f"procrastinate {procrastinate.__version__}"


class WorkerStopping(Exception):
    """Raised inside a job whose worker is stopping: the job goes back to the queue at once."""


def task_name(kind: str) -> str:
    """The queue's name of the task that runs jobs of ``kind``."""
    return f"rag.{kind}"


def install_schema(conn: psycopg.Connection, schema: str) -> None:
    """Create the queue's tables and functions in ``schema`` unless they are there.

    The schema is marked with the procrastinate version that created it; another version is
    refused with the way to bring it up to date, rather than used half-migrated.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (_LOCK_NAME,))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        row = conn.execute(
            "SELECT to_regclass('procrastinate_jobs') IS NOT NULL,"
            " obj_description(to_regclass('procrastinate_jobs'), 'pg_class')"
        ).fetchone()
        assert row is not None
        installed, mark = row
        if not installed:
            # No parameters: psycopg sends the file as one multi-statement query.
            conn.execute(SchemaManager.get_schema())
            conn.execute(
                sql.SQL("COMMENT ON TABLE procrastinate_jobs IS {}").format(
                    sql.Literal(_SCHEMA_MARK)
                )
            )
        elif mark != _SCHEMA_MARK:
            raise DatabaseUnavailable(
                f"The job queue's tables in schema {schema} were made by {mark or 'another version'}"
                f", not {_SCHEMA_MARK}. Apply procrastinate's migrations in between "
                f"({SchemaManager.get_migrations_path()}) and mark the table with "
                f"COMMENT ON TABLE {schema}.procrastinate_jobs IS '{_SCHEMA_MARK}'.",
                code="queue_schema_outdated",
            )


def deferring_app() -> procrastinate.App:
    """A queue client that defers and withdraws jobs on connections it is given."""
    return procrastinate.App(connector=procrastinate.SyncPsycopgConnector())


def defer(
    app: procrastinate.App,
    conn: psycopg.Connection,
    *,
    kind: str,
    job_id: str,
    lock: str | None = None,
) -> int:
    """Put job ``job_id`` on the queue of ``kind`` within ``conn``'s transaction; the queue's id.
    No two jobs with the same ``lock`` run at the same time."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    deferrer = app.configure_task(task_name(kind), queue=kind, lock=lock, connection=conn)
    return deferrer.defer(job_id=job_id)


def withdraw(app: procrastinate.App, conn: psycopg.Connection, queue_job_id: int) -> None:
    """Take a job that no worker has fetched yet off the queue (a no-op once one has)."""
    app.job_manager.cancel_job_by_id(queue_job_id, delete_job=True, connection=conn)


def worker_app(conninfo: str, schema: str, *, pool_max: int) -> procrastinate.App:
    """A queue client for a worker process, on a pool of its own."""
    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo,
        min_size=1,
        max_size=pool_max,
        kwargs={"application_name": "rag-worker", "options": f"-c search_path={schema}"},
    )
    return procrastinate.App(
        connector=connector, periodic_defaults={"max_delay": PERIODIC_MAX_DELAY_S}
    )


def live_workers(conn: psycopg.Connection, within_s: float) -> int:
    """Workers whose last heartbeat is at most ``within_s`` old."""
    row = conn.execute(
        "SELECT count(*) FROM procrastinate_workers"
        " WHERE last_heartbeat > now() - make_interval(secs => %s)",
        (within_s,),
    ).fetchone()
    assert row is not None
    return int(row[0])


class _Retry(BaseRetryStrategy):
    """A job whose worker stops runs again at once; one the database failed, after a pause.
    Any other failure is the job's own and ends it (the job records why)."""

    def __init__(self, wait_s: float) -> None:
        self._wait_s = wait_s

    def get_retry_decision(
        self, *, exception: BaseException, job: QueueJob
    ) -> RetryDecision | None:
        if isinstance(exception, WorkerStopping):
            return RetryDecision(retry_in={"seconds": 0})
        if isinstance(exception, DatabaseUnavailable):
            return RetryDecision(retry_in={"seconds": self._wait_s})
        return None


def register(
    app: procrastinate.App, kind: str, run: Callable[[str], Any], *, retry_wait_s: float
) -> None:
    """Make ``app``'s workers run jobs of ``kind`` with ``run(job_id)``."""

    def run_job(job_id: str) -> None:
        run(job_id)

    app.task(name=task_name(kind), queue=kind, retry=_Retry(retry_wait_s))(run_job)
