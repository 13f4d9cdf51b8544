"""What a run writes about itself: ``run.json`` (how to trace and reproduce it) and the
training log, one line per logged step."""

from __future__ import annotations

import json
import platform
import shlex
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.hf.chat_template import COMPACT_LLAMA3_TEMPLATE
from app.recipes.job_files import write_json_atomic

if TYPE_CHECKING:
    import torch

    from app.finetune.train import Run

LOG_FILE = "train_log.jsonl"


def resume_command(output: Path) -> str:
    """The command that continues this run after an interruption."""
    return f"rag finetune train --output {shlex.quote(str(output))} --resume"


def run_record(run: Run, dtype: torch.dtype, governor_applied: list[str]) -> dict[str, Any]:
    """What ``run.json`` says about the run before it trains (``save`` adds the outcome)."""
    config, data, accelerator = run.config, run.data, run.accelerator
    return {
        "base_model": config.model,
        "method": config.method,
        "data": str(Path(config.data).resolve()),
        "data_hash": data.data_hash,
        "examples_cache_key": data.cache_key,
        "data_report": data.report.to_dict(),
        "chat_template": (
            "compact-llama3" if run.chat_template == COMPACT_LLAMA3_TEMPLATE else "model"
        ),
        "config": _jsonable(asdict(config)),
        "total_steps": run.total_steps,
        "rows_per_epoch": run.stream.rows_per_epoch,
        "trainable_params": sum(p.numel() for p in run.model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in run.model.parameters()),
        "device": str(accelerator.device),
        "processes": accelerator.num_processes,
        "sharding": "fsdp" if run.sharded else "none",
        "dtype": str(dtype).removeprefix("torch."),
        "governor_applied": governor_applied,
        "versions": _versions(),
        "resume_command": resume_command(Path(config.output)),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def outcome_record(run: Run) -> dict[str, Any]:
    """What ``run.json`` adds about the run once it has finished."""
    return {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "steps": run.step,
        "tokens": run.tokens,
        "positions": run.positions,
        "elapsed_s": round(run.elapsed_s, 3),
        "cpu_s": round(run.cpu_s, 3),
        "tokens_per_s": round(run.tokens / max(run.elapsed_s, 1e-9), 1),
        "governor_stats": run.governor.stats.to_dict(),
    }


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines past the checkpoint: the resumed run writes them again."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def append_log(path: Path, entry: dict[str, Any]) -> None:
    """Add one step's line to the training log."""
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically, so a run killed mid-write leaves the previous record."""
    write_json_atomic(path, data, indent=2)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "tokenizers"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions
