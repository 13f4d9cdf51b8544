"""The files through which a worker follows a fine-tuning job's training process, in the job's
folder (see ``app.finetune.job_process``), and the process's exit statuses. Shared by both sides
so that neither imports the other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

JOB_FILE = "job.json"
CONTROL_FILE = "control.json"
STATUS_FILE = "status.json"
LOG_FILE = "train_log.jsonl"
EVAL_FILE = "eval.json"
ERROR_FILE = "error.json"
PROCESS_LOG = "train.log"

EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_STOPPED = 3
# Training finished, its evaluation failed: the adapter is usable, the report missing.
EXIT_EVAL_FAILED = 4


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object written whole (tmp + rename) by another process, or ``None`` while absent."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json_atomic(path: Path, data: dict[str, Any], *, indent: int | None = None) -> None:
    """Write ``data`` so that a reader (or a run killed mid-write) sees the old file or the new
    one, never half of one."""
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(data, indent=indent, ensure_ascii=False), encoding="utf-8")
    partial.replace(path)
