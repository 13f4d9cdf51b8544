"""Finished jobs are deleted after the retention, by the workers, never a queued or running one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from app.components import Components
from app.core.config import Settings
from app.jobs import queue, retention
from app.jobs.store import Job, JobFile, new_job_id
from app.recipes.job_files import JOB_FILE
from tests.api.conftest import make_settings
from tests.conftest import drop_schema, new_schema_name
from tests.utils.workers import FAST_JOBS, poll, worker_process


@pytest.fixture
def settings(pg_url: str, tmp_path: Path) -> Settings:
    jobs = FAST_JOBS.model_copy(update={"retention_days": 30})
    return make_settings(pg_url, tmp_path / "data").model_copy(update={"jobs": jobs})


@pytest.fixture
def schema(pg_url: str) -> Iterator[str]:
    name = new_schema_name("retention")
    yield name
    drop_schema(pg_url, name)


@pytest.fixture
def components(settings: Settings, schema: str) -> Iterator[Components]:
    parts = Components(settings, schema=schema)
    yield parts
    parts.close()


def _execute(pg_url: str, schema: str, query: str, *params: object) -> list[tuple]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def _job(
    components: Components, pg_url: str, status: str, days_ago: int, kind: str = "ingest"
) -> Job:
    """A job in ``status`` whose last change was ``days_ago`` days ago, with a file."""
    job = components.jobs.create(
        kind, {"collection": None}, [JobFile(f"{uuid.uuid4().hex}.md", data=b"# a\n\nb\n")]
    )
    _execute(
        pg_url,
        components.jobs.schema,
        "UPDATE jobs SET status = %s, updated_at = now() - make_interval(days => %s) WHERE id = %s",
        status,
        days_ago,
        job.id,
    )
    return job


def _queue_job_finished(pg_url: str, schema: str, job: Job, days_ago: int) -> int:
    """Mark the queue's row of ``job`` succeeded ``days_ago`` days ago, as a worker that keeps
    finished rows would leave it; its id."""
    [(queue_job_id,)] = _execute(
        pg_url, schema, "SELECT queue_job_id FROM jobs WHERE id = %s", job.id
    )
    _execute(
        pg_url,
        schema,
        "UPDATE procrastinate_jobs SET status = 'succeeded' WHERE id = %s",
        queue_job_id,
    )
    _execute(
        pg_url,
        schema,
        "UPDATE procrastinate_events SET at = now() - make_interval(days => %s) WHERE job_id = %s",
        days_ago,
        queue_job_id,
    )
    return queue_job_id


def _job_ids(pg_url: str, schema: str) -> set[str]:
    return {row[0] for row in _execute(pg_url, schema, "SELECT id FROM jobs")}


def test_only_jobs_that_ended_before_the_retention_are_deleted(
    components: Components, settings: Settings, pg_url: str, schema: str
) -> None:
    old = [_job(components, pg_url, s, 31) for s in ("succeeded", "failed", "cancelled")]
    old.append(_job(components, pg_url, "failed", 31, kind="finetune"))
    kept = [
        _job(components, pg_url, "succeeded", 29),
        _job(components, pg_url, "queued", 400),
        _job(components, pg_url, "running", 400),
        # The record of an adapter that may be serving.
        _job(components, pg_url, "succeeded", 400, kind="finetune"),
    ]
    old_queue_row = _queue_job_finished(pg_url, schema, old[0], 31)
    recent_queue_row = _queue_job_finished(pg_url, schema, kept[0], 29)

    async def run() -> int:
        app = queue.worker_app(settings.database.url, schema, pool_max=2)
        async with app.open_async():
            return await retention.delete_finished(app, settings.jobs.retention_days)

    assert asyncio.run(run()) == 4
    assert _job_ids(pg_url, schema) == {job.id for job in kept}
    files = _execute(pg_url, schema, "SELECT DISTINCT job_id FROM job_files")
    assert {row[0] for row in files} == {job.id for job in kept}
    queue_rows = {row[0] for row in _execute(pg_url, schema, "SELECT id FROM procrastinate_jobs")}
    assert old_queue_row not in queue_rows
    assert recent_queue_row in queue_rows


def _training_job(
    components: Components, pg_url: str, status: str, root: Path, *, job_file: bool = True
) -> tuple[Job, Path]:
    """A fine-tuning job that ended in ``status`` 31 days ago, with a folder of checkpoints."""
    job_id = new_job_id()
    folder = root / job_id
    (folder / "checkpoint-50").mkdir(parents=True)
    (folder / "checkpoint-50" / "adapter_model.safetensors").write_bytes(b"\0" * 1024)
    if job_file:
        (folder / JOB_FILE).write_text("{}", encoding="utf-8")
    job = components.jobs.create("finetune", {"output_dir": str(folder)}, [], job_id=job_id)
    _execute(
        pg_url,
        components.jobs.schema,
        "UPDATE jobs SET status = %s, updated_at = now() - interval '31 days' WHERE id = %s",
        status,
        job.id,
    )
    return job, folder


def test_a_deleted_training_job_takes_its_own_folder_with_it(
    components: Components, settings: Settings, pg_url: str, schema: str, tmp_path: Path
) -> None:
    root = tmp_path / "finetune" / "jobs"
    failed, failed_folder = _training_job(components, pg_url, "failed", root)
    cancelled, cancelled_folder = _training_job(components, pg_url, "cancelled", root)
    # Succeeded: its adapter may be serving.
    _, succeeded_folder = _training_job(components, pg_url, "succeeded", root)
    # A folder the job's worker never wrote its job file into is not taken for the job's own.
    _, foreign_folder = _training_job(components, pg_url, "failed", root, job_file=False)

    async def run() -> int:
        app = queue.worker_app(settings.database.url, schema, pool_max=2)
        async with app.open_async():
            return await retention.delete_finished(app, settings.jobs.retention_days)

    assert asyncio.run(run()) == 3
    assert not failed_folder.exists() and not cancelled_folder.exists()
    assert succeeded_folder.exists() and foreign_folder.exists()
    assert {failed.id, cancelled.id}.isdisjoint(_job_ids(pg_url, schema))


def test_a_worker_deletes_old_finished_jobs_when_it_starts(
    components: Components, settings: Settings, pg_url: str, schema: str
) -> None:
    old = _job(components, pg_url, "succeeded", 31)
    recent = _job(components, pg_url, "failed", 1)
    with worker_process(settings, schema):
        poll(lambda: _job_ids(pg_url, schema), lambda ids: old.id not in ids)
    assert _job_ids(pg_url, schema) == {recent.id}


def test_a_retention_of_zero_keeps_every_job(settings: Settings) -> None:
    app = queue.worker_app(settings.database.url, "unused", pool_max=1)
    retention.register(app, 0)
    assert app.periodic_registry.periodic_tasks == {}
    retention.register(app, 30)
    [task] = app.periodic_registry.periodic_tasks.values()
    assert (task.task.name, task.cron) == (retention.TASK_NAME, retention.CRON)
