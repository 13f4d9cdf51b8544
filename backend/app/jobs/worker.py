"""The worker loop of ``rag worker``: fetch jobs, run them, take over those of dead workers.

procrastinate runs the jobs (each in a thread, ``concurrency`` at once) and records this
worker's heartbeat every ``heartbeat_s``. Beside it, every ``heartbeat_s`` the worker looks for
jobs whose worker has been silent for ``stalled_after_s`` (killed, or its machine lost) and puts
them back on the queue, where any worker, this one included, resumes them from their last
stored file.

Every worker also runs the hourly deletion of old finished jobs (``retention``).

SIGTERM or SIGINT stops the worker: it fetches no new job, and its running jobs hand
themselves back to the queue at their next progress report. Whatever has not stopped after
``shutdown_grace_s`` is cut short by exiting; those jobs are then taken over like a dead
worker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading

import procrastinate
from procrastinate import exceptions as queue_errors

from app.core.config import JobsSettings
from app.core.logger import get_logger
from app.core.parent_watch import watch_parent
from app.jobs import queue, retention
from app.retriever.parsing import stop_parsing

log = get_logger(__name__)


async def _retry_stalled(app: procrastinate.App, settings: JobsSettings) -> None:
    while True:
        await asyncio.sleep(settings.heartbeat_s)
        try:
            stalled = await app.job_manager.get_stalled_jobs(
                seconds_since_heartbeat=settings.stalled_after_s
            )
            for job in stalled:
                try:
                    await app.job_manager.retry_job(job)
                    log.warning("job %s: its worker went silent; queued again", job.task_kwargs)
                # Another worker put it back first.
                except queue_errors.ConnectorException:
                    continue
            await app.job_manager.prune_stalled_workers(settings.stalled_after_s)
        # The database may be down for a while; the loop tries again at the next beat.
        except queue_errors.ConnectorException as exc:
            log.warning("looking for stalled jobs failed: %s", exc)


async def _run(
    app: procrastinate.App, settings: JobsSettings, concurrency: int, kinds: tuple[str, ...]
) -> None:
    async with app.open_async():
        watcher = asyncio.create_task(_retry_stalled(app, settings), name="retry-stalled")
        try:
            await app.run_worker_async(
                queues=[*kinds, queue.MAINTENANCE_QUEUE],
                concurrency=concurrency,
                update_heartbeat_interval=settings.heartbeat_s,
                stalled_worker_timeout=settings.stalled_after_s,
                fetch_job_polling_interval=settings.poll_s,
                # Our jobs table keeps every job; the queue keeps only what is to do.
                delete_jobs="always",
                install_signal_handlers=False,
            )
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


def run_worker(
    app: procrastinate.App,
    settings: JobsSettings,
    *,
    concurrency: int,
    stopping: threading.Event,
    kinds: tuple[str, ...] = queue.KINDS,
    grace_s: float | None = None,
    parent_pid: int | None = None,
) -> None:
    """Run the worker on the queues of ``kinds`` until SIGTERM / SIGINT (or, with ``parent_pid``,
    that process's end); a stopping worker gives its jobs ``grace_s`` (default
    ``shutdown_grace_s``) to hand themselves back."""
    retention.register(app, settings.retention_days)
    loop = asyncio.new_event_loop()
    main = loop.create_task(_run(app, settings, concurrency, kinds))

    def stop(reason: str) -> None:
        if stopping.is_set():
            return
        log.info("worker stopping: %s", reason)
        stopping.set()
        loop.call_soon_threadsafe(main.cancel)
        # A file being parsed would hold its job until the parse limit; its parsing process is
        # killed instead, and the job goes back to the queue.
        stop_parsing()
        # A job stuck in one long step (a huge file in the tokenizer) cannot hand itself back;
        # exiting leaves it to be taken over.
        grace = settings.shutdown_grace_s if grace_s is None else grace_s
        deadline = threading.Timer(grace, os._exit, args=(0,))
        deadline.daemon = True
        deadline.start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, _frame: stop(signal.Signals(s).name))
    if parent_pid is not None:
        watch_parent(parent_pid, lambda: stop("the server that started it has gone"))
    try:
        loop.run_until_complete(main)
    except asyncio.CancelledError:
        pass
    finally:
        loop.close()
