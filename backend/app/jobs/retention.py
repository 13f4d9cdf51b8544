"""Finished jobs are deleted after ``JOBS_RETENTION_DAYS``, by a periodic task of the workers.

Every worker registers the task, hourly, on the maintenance queue. procrastinate defers each
hour's run once however many workers there are (its ``procrastinate_periodic_defers`` rows are
unique per tick), and a worker that starts runs the last hour's if nobody did. The task deletes
the ``jobs`` rows that ended (succeeded, failed or cancelled) longer ago than the retention,
their files with them, and procrastinate's own rows of jobs that ended as long ago: workers
delete those as each job ends, so only a worker stopped between the two leaves one. A queued or
running job is never deleted, however old, and neither is a fine-tuning job that succeeded: it
holds the record (loss curve, evaluation, publications) of an adapter that may be serving. A
failed or cancelled fine-tuning job's folder (checkpoints, logs) goes with its row, where the
worker running the task can see it.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import procrastinate

from app.core.logger import get_logger
from app.jobs import queue
from app.recipes.job_files import JOB_FILE

log = get_logger(__name__)

TASK_NAME = "rag.retention"
CRON = "0 * * * *"

# A finished job never changes again: its last update is when it ended.
_DELETE_FINISHED = (
    "WITH deleted AS ("
    " DELETE FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled')"
    " AND NOT (kind = 'finetune' AND status = 'succeeded')"
    " AND updated_at < now() - make_interval(days => %(days)s::integer)"
    " RETURNING id, kind, payload->>'output_dir' AS output_dir"
    ") SELECT id, kind, output_dir FROM deleted"
)


async def delete_finished(app: procrastinate.App, days: int) -> int:
    """Delete the jobs, ours and the queue's, that ended more than ``days`` ago; how many of
    ours. ``app`` must be open."""
    rows = await app.connector.execute_query_all_async(_DELETE_FINISHED, days=days)
    await app.job_manager.delete_old_jobs(
        nb_hours=days * 24, include_failed=True, include_cancelled=True, include_aborted=True
    )
    for row in rows:
        if row["kind"] == "finetune" and row["output_dir"]:
            # Checkpoints run to gigabytes: deleting them must not hold the worker's event loop.
            await asyncio.to_thread(remove_job_folder, str(row["id"]), Path(row["output_dir"]))
    deleted = len(rows)
    if deleted:
        log.info("deleted %d jobs that ended more than %d days ago", deleted, days)
    return deleted


def remove_job_folder(job_id: str, folder: Path) -> None:
    """Delete a training job's folder, only when it is that job's own: named after the job and
    holding the job file its worker wrote, so that a stored path never removes anything else."""
    if folder.name != job_id or not (folder / JOB_FILE).is_file():
        return
    shutil.rmtree(folder, ignore_errors=True)
    log.info("deleted the folder of training job %s: %s", job_id, folder)


def register(app: procrastinate.App, days: int) -> None:
    """Make ``app``'s workers delete finished jobs older than ``days``, every hour; with 0,
    jobs are kept."""
    if days == 0:
        return

    async def delete_finished_jobs(timestamp: int) -> None:
        await delete_finished(app, days)

    task = app.task(name=TASK_NAME, queue=queue.MAINTENANCE_QUEUE)(delete_finished_jobs)
    app.periodic(cron=CRON, periodic_id="finished-jobs")(task)
