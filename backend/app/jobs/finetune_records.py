"""What the ``jobs`` table holds for fine-tuning jobs beyond any job's fields: the pause asked for,
the steps the trainer logged (``job_metrics``), and the run's state (``jobs.metrics``: the
governor, the ETA, the phase, the evaluation, where the adapter was published).

A training job pauses without ending: ``pause_requested`` is kept across restarts, and the
worker passes it on to the training process, which idles between steps until it is lifted.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from app.core.errors import Conflict
from app.jobs.store import (
    FINAL_STATUSES,
    JOB_COLUMNS,
    Job,
    JobStore,
    LeaseLost,
    job_from_row,
    not_found,
)
from app.text import normalize_json

KIND = "finetune"
# A job's chart needs no more points than a screen is wide; the last point is always kept.
MAX_METRIC_POINTS = 2000


def set_paused(store: JobStore, job_id: str, paused: bool) -> Job:
    """Ask a training job to pause (or to go on); ``Conflict`` for a job that ended or that
    cannot pause (an ingest job)."""
    with store.connection() as conn, conn.transaction():
        row = conn.execute(
            "SELECT kind, status FROM jobs WHERE id = %s FOR UPDATE", (job_id,)
        ).fetchone()
        if row is None:
            raise not_found(job_id)
        kind, status = row
        if kind != KIND:
            raise Conflict(
                f"Job {job_id} is a {kind} job; only fine-tuning jobs pause.",
                code="job_not_pausable",
                params={"id": job_id, "kind": kind},
            )
        if status in FINAL_STATUSES:
            raise Conflict(
                f"Job {job_id} has already {status}; there is nothing to pause or resume.",
                code="job_finished",
                params={"id": job_id, "status": status},
            )
        updated = conn.execute(
            f"UPDATE jobs SET pause_requested = %s, updated_at = now() WHERE id = %s"
            f" RETURNING {JOB_COLUMNS}",
            (paused, job_id),
        ).fetchone()
    assert updated is not None
    return job_from_row(updated)


def pause_requested(store: JobStore, job_id: str) -> bool:
    """Whether the job is asked to pause."""
    with store.connection() as conn:
        row = conn.execute("SELECT pause_requested FROM jobs WHERE id = %s", (job_id,)).fetchone()
    return bool(row and row[0])


def sync(
    store: JobStore,
    job_id: str,
    lease: str,
    *,
    progress: dict[str, int],
    state: dict[str, Any],
    entries: list[dict[str, Any]],
) -> tuple[bool, bool]:
    """Store the run's progress, state and newly logged steps in one transaction; whether the job
    is to be cancelled and whether it is to pause. ``LeaseLost`` when another run holds it.

    Steps logged again after a resume replace their earlier rows: a resumed run follows the
    same curve, so they are the same values."""
    state, entries = normalize_json(state), normalize_json(entries)
    with store.connection() as conn, conn.transaction():
        row = conn.execute(
            "UPDATE jobs SET progress = %s, settled = %s, metrics = metrics || %s,"
            " updated_at = now() WHERE id = %s AND status = 'running' AND lease = %s"
            " RETURNING cancel_requested, pause_requested",
            (Jsonb(progress), Jsonb(progress), Jsonb(state), job_id, lease),
        ).fetchone()
        if row is None:
            raise LeaseLost(job_id)
        if entries:
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO job_metrics (job_id, step, entry) VALUES (%s, %s, %s)"
                    " ON CONFLICT (job_id, step) DO UPDATE SET entry = EXCLUDED.entry",
                    [(job_id, int(e["step"]), Jsonb(e)) for e in entries],
                )
    return bool(row[0]), bool(row[1])


def flags(store: JobStore, job_id: str, lease: str) -> tuple[bool, bool]:
    """Whether the job is to be cancelled and whether it is to pause, as ``sync`` answers, without
    writing anything. ``LeaseLost`` when another run holds it."""
    with store.connection() as conn:
        row = conn.execute(
            "SELECT cancel_requested, pause_requested FROM jobs"
            " WHERE id = %s AND status = 'running' AND lease = %s",
            (job_id, lease),
        ).fetchone()
    if row is None:
        raise LeaseLost(job_id)
    return bool(row[0]), bool(row[1])


def set_state(store: JobStore, job_id: str, state: dict[str, Any]) -> None:
    """Merge ``state`` into the job's stored state (whatever its status). Text the training
    process wrote (a generated review in an evaluation) may hold NUL, which jsonb refuses:
    what is stored is normalised."""
    state = normalize_json(state)
    with store.connection() as conn:
        conn.execute(
            "UPDATE jobs SET metrics = metrics || %s, updated_at = now() WHERE id = %s",
            (Jsonb(state), job_id),
        )


def metrics(store: JobStore, job_id: str, *, after_step: int = -1) -> list[dict[str, Any]]:
    """The steps logged after ``after_step``, in order; at most ``MAX_METRIC_POINTS`` evenly spread
    ones (the last always among them)."""
    with store.connection() as conn:
        count_row = conn.execute(
            "SELECT count(*) FROM job_metrics WHERE job_id = %s AND step > %s", (job_id, after_step)
        ).fetchone()
        count = int(count_row[0]) if count_row else 0
        every = max(1, -(-count // MAX_METRIC_POINTS))
        rows = conn.execute(
            "SELECT entry FROM (SELECT entry, step, row_number() OVER (ORDER BY step DESC) - 1 AS back"
            " FROM job_metrics WHERE job_id = %s AND step > %s) AS logged"
            " WHERE back %% %s = 0 ORDER BY step",
            (job_id, after_step, every),
        ).fetchall()
    return [row[0] for row in rows]


def requeue(store: JobStore, job_id: str, payload: dict[str, Any], state: dict[str, Any]) -> Job:
    """Run a finished training job again with ``payload`` merged in (an evaluation asked for after
    it ended): it goes back to the queue, and its worker skips the training already done."""
    payload, state = normalize_json(payload), normalize_json(state)
    with store.connection() as conn, conn.transaction():
        row = conn.execute(
            "SELECT status, payload FROM jobs WHERE id = %s AND kind = %s FOR UPDATE",
            (job_id, KIND),
        ).fetchone()
        if row is None:
            raise not_found(job_id)
        status, old = row
        if status != "succeeded":
            raise Conflict(
                f"Job {job_id} is {status}; only a fine-tuning job that succeeded is evaluated again.",
                code="job_not_finished",
                params={"id": job_id, "status": status},
            )
        lock = old.get("lock")
        queue_job_id = store.defer_existing(conn, KIND, job_id, lock=lock)
        updated = conn.execute(
            "UPDATE jobs SET status = 'queued', error = NULL, payload = payload || %s,"
            " metrics = metrics || %s, queue_job_id = %s, cancel_requested = false,"
            f" updated_at = now() WHERE id = %s RETURNING {JOB_COLUMNS}",
            (Jsonb(payload), Jsonb(state), queue_job_id, job_id),
        ).fetchone()
    assert updated is not None
    return job_from_row(updated)
