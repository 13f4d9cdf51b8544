"""Starting, evaluating again and publishing fine-tuning jobs, as the API asks.

A job's request is the recipe of ``rag finetune train`` under the same field names, validated by
the same definition (``app.recipes.train_config``), plus what only a job has: the data set it
trains on (by id), the one it is evaluated on, the device and whether it waits for other
training jobs on that device. The job's folder is ``FINETUNE_DIR/jobs/<job id>``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from app.core.errors import Conflict, InvalidInput
from app.jobs import finetune_records
from app.jobs.store import Job, JobStore, new_job_id
from app.pipelines.adapters import ServedAdapter, ServedAdapters
from app.recipes.eval_settings import EvalSettings
from app.recipes.settings_fields import from_mapping
from app.recipes.train_config import train_config_from_dict
from app.tuning.datasets import DatasetStore

KIND = finetune_records.KIND
# Fields of a job's request that are the job's own, not the recipe's.
_JOB_FIELDS = ("dataset_id", "eval_dataset_id", "device", "exclusive", "eval")
# Recipe fields a job sets itself: the data set's file, the job's folder, no progress bar.
_SET_BY_JOB = ("data", "output", "progress")
_DEVICE = re.compile(r"auto|cpu|cuda:\d{1,2}")


def jobs_dir(root: Path) -> Path:
    """Where the jobs' folders are, under ``FINETUNE_DIR``."""
    return root / "jobs"


def start_job(body: dict[str, Any], *, datasets: DatasetStore, jobs: JobStore, root: Path) -> Job:
    """Validate the request, record the job and queue it."""
    recipe = {k: v for k, v in body.items() if k not in _JOB_FIELDS}
    for name in _SET_BY_JOB:
        if name in recipe:
            raise InvalidInput(
                f"{name} is set by the job itself; name the data set with dataset_id.",
                code="invalid_input",
                params={"field": name},
            )
    dataset_id = _text(body, "dataset_id", required=True)
    eval_dataset_id = _text(body, "eval_dataset_id")
    device = _text(body, "device") or "auto"
    if not _DEVICE.fullmatch(device):
        raise InvalidInput(
            f"device must be auto, cpu or cuda:N, got {device!r}.", params={"field": "device"}
        )
    exclusive = body.get("exclusive", True)
    if not isinstance(exclusive, bool):
        raise InvalidInput("exclusive must be true or false.", params={"field": "exclusive"})
    job_id = new_job_id()
    output = jobs_dir(root) / job_id
    config = train_config_from_dict(
        {**recipe, "data": datasets.require(dataset_id).path, "output": str(output)}
    )
    config = dataclasses.replace(config, progress=False)
    evaluation = None
    if eval_dataset_id is not None:
        evaluation = _evaluation(datasets, eval_dataset_id, body.get("eval"), round_=1)
    elif body.get("eval") is not None:
        raise InvalidInput(
            "eval settings need an eval_dataset_id to evaluate on.", params={"field": "eval"}
        )
    lock = f"finetune:{device}" if exclusive else None
    payload = {
        "dataset_id": dataset_id,
        "eval_dataset_id": eval_dataset_id,
        "device": device,
        "exclusive": exclusive,
        "lock": lock,
        "output_dir": str(output),
        "config": _jsonable(config),
        "evaluation": evaluation,
    }
    return jobs.create(KIND, payload, total=config.max_steps or 0, lock=lock, job_id=job_id)


def evaluate_again(
    job_id: str, body: dict[str, Any], *, datasets: DatasetStore, jobs: JobStore
) -> Job:
    """Queue a new evaluation of a finished job (another data set or other settings); the
    training already done is skipped, and the new report replaces the old one."""
    job = _training_job(jobs, job_id)
    unknown = sorted(set(body) - {"eval_dataset_id", "eval"})
    if unknown:
        raise InvalidInput(f"Unknown field {unknown[0]!r}.", params={"field": unknown[0]})
    eval_dataset_id = _text(body, "eval_dataset_id") or job.payload.get("eval_dataset_id")
    if eval_dataset_id is None:
        raise InvalidInput(
            "This job has no evaluation data set; give eval_dataset_id.",
            params={"field": "eval_dataset_id"},
        )
    before = job.payload.get("evaluation") or {}
    settings = body.get("eval", before.get("settings"))
    evaluation = _evaluation(datasets, eval_dataset_id, settings, int(before.get("round", 0)) + 1)
    return finetune_records.requeue(
        jobs,
        job_id,
        {"eval_dataset_id": eval_dataset_id, "evaluation": evaluation},
        {"phase": "evaluating", "eval": None, "eval_error": None},
    )


def publish(job_id: str, name: str, *, jobs: JobStore, adapters: ServedAdapters) -> ServedAdapter:
    """Serve a finished job's adapter as ``name`` to the review writer, without a restart."""
    job = _training_job(jobs, job_id)
    if job.status != "succeeded" or not job.metrics.get("adapter_ready"):
        raise Conflict(
            f"Job {job_id} is {job.status}; its adapter is published once it has succeeded.",
            code="job_not_finished",
            params={"id": job_id, "status": job.status},
        )
    served = adapters.load(name, Path(job.payload["output_dir"]))
    published = [n for n in job.metrics.get("published") or [] if n != name]
    finetune_records.set_state(jobs, job_id, {"published": [*published, name]})
    return served


def _training_job(jobs: JobStore, job_id: str) -> Job:
    job = jobs.require(job_id)
    if job.kind != KIND:
        raise Conflict(
            f"Job {job_id} is a {job.kind} job, not a fine-tuning job.",
            code="not_a_finetune_job",
            params={"id": job_id, "kind": job.kind},
        )
    return job


def _evaluation(
    datasets: DatasetStore, dataset_id: str, settings: Any, round_: int
) -> dict[str, Any]:
    if settings is not None and not isinstance(settings, dict):
        raise InvalidInput(
            "eval must be an object of evaluation settings.", params={"field": "eval"}
        )
    validated: EvalSettings = from_mapping(EvalSettings, settings or {}, prefix="eval.")
    return {
        "data": datasets.require(dataset_id).path,
        "settings": _jsonable(validated),
        "round": round_,
    }


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidInput(f"{name} is required.", params={"field": name})
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 200:
        raise InvalidInput(f"{name} must be a non-empty string.", params={"field": name})
    return value


def _jsonable(settings: Any) -> dict[str, Any]:
    """A settings dataclass as JSON data (tuples as lists), as ``from_mapping`` reads it back."""
    data: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(settings)))
    return data
