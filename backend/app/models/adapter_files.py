"""What a LoRA adapter folder says about itself, read without loading a model.

``rag finetune train --output DIR`` writes the adapter (``adapter_config.json`` and its weights)
together with ``run.json`` (base model, data, settings, steps) and ``train_log.jsonl`` (one line
per logged step); ``rag finetune eval --out DIR`` adds ``eval.json``. Serving reads them here, to
check that an adapter fits the loaded base and to show how it was trained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import InvalidInput
from app.core.logger import get_logger

log = get_logger(__name__)

CONFIG_FILE = "adapter_config.json"
RUN_FILE = "run.json"
LOG_FILE = "train_log.jsonl"
EVAL_FILE = "eval.json"
# The adapter's own measures in an eval report, by the names the report gives them.
_EVAL_MEASURES = ("perplexity", "distinct_1", "distinct_2", "copy_rate", "empty_rate")


@dataclass(frozen=True, slots=True)
class RunRecord:
    """How an adapter was trained, and how it scored when it was evaluated."""

    base_model: str | None
    method: str | None
    data: str | None
    examples: int | None
    """Reviews kept for training after cleaning."""
    steps: int | None
    total_steps: int | None
    final_loss: float | None
    """The loss of the last logged step."""
    finished_at: str | None
    """None while the run has not finished (or was interrupted)."""
    eval: dict[str, float | str | None] | None = field(default=None)
    """The adapter's rating consistency, perplexity and diversity, with the base's for
    comparison; None when no ``eval.json`` lies beside it."""


def read_adapter_config(name: str, path: Path) -> dict[str, Any]:
    """The adapter's ``adapter_config.json``; ``InvalidInput`` if ``path`` is no adapter folder."""
    config_file = path / CONFIG_FILE
    if not path.is_dir():
        raise InvalidInput(
            f"LoRA adapter {name!r}: {path} is not a directory.",
            code="invalid_adapter",
            params={"name": name, "path": str(path)},
        )
    if not config_file.is_file():
        raise InvalidInput(
            f"LoRA adapter {name!r}: {path} has no {CONFIG_FILE}; point it at the folder "
            "`rag finetune train --output` wrote.",
            code="invalid_adapter",
            params={"name": name, "path": str(path)},
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(
            f"LoRA adapter {name!r}: unreadable {config_file}: {exc}",
            code="invalid_adapter",
            params={"name": name, "path": str(path)},
        ) from exc
    if not isinstance(config, dict):
        raise InvalidInput(
            f"LoRA adapter {name!r}: {config_file} is not a JSON object.",
            code="invalid_adapter",
            params={"name": name, "path": str(path)},
        )
    return config


def check_trained_on(name: str, path: Path, config: dict[str, Any], base: str) -> None:
    """``InvalidInput`` naming both models when the adapter was trained on another base."""
    trained_on = config.get("base_model_name_or_path")
    if isinstance(trained_on, str) and trained_on and not same_model(trained_on, base):
        raise InvalidInput(
            f"LoRA adapter {name!r} at {path} was trained on {trained_on}, not on the review "
            f"model's base {base}; serve it with the base it was trained on.",
            code="adapter_base_mismatch",
            params={"name": name, "adapter_base": trained_on, "model_base": base},
        )


def same_model(a: str, b: str) -> bool:
    """Same id, same directory, or a hub id and a local copy with the same final name."""
    if a == b:
        return True
    path_a, path_b = Path(a).expanduser(), Path(b).expanduser()
    if path_a.exists() and path_b.exists():
        return path_a.resolve() == path_b.resolve()
    return path_a.name == path_b.name


def read_run_record(path: Path) -> RunRecord | None:
    """The run record beside the adapter at ``path``; None when it has no ``run.json``."""
    run = _read_json(path / RUN_FILE)
    if run is None:
        return None
    report = run.get("data_report")
    return RunRecord(
        base_model=_text(run.get("base_model")),
        method=_text(run.get("method")),
        data=_text(run.get("data")),
        examples=_integer(report.get("kept")) if isinstance(report, dict) else None,
        steps=_integer(run.get("steps")),
        total_steps=_integer(run.get("total_steps")),
        final_loss=_final_loss(path / LOG_FILE),
        finished_at=_text(run.get("finished_at")),
        eval=_eval_summary(path / EVAL_FILE),
    )


def _final_loss(log_file: Path) -> float | None:
    try:
        lines = log_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for line in reversed(lines):
        try:
            loss = json.loads(line).get("loss")
        except (json.JSONDecodeError, AttributeError):
            # A line cut short by a crash while it was written.
            continue
        if isinstance(loss, int | float):
            return float(loss)
    return None


def _eval_summary(eval_file: Path) -> dict[str, float | str | None] | None:
    report = _read_json(eval_file)
    results = report.get("results") if report else None
    if not isinstance(results, dict):
        return None
    adapter, base = results.get("adapter") or {}, results.get("base") or {}
    if not isinstance(adapter, dict) or not isinstance(base, dict):
        return None
    summary: dict[str, float | str | None] = {"data": _text(report.get("data"))}
    summary["rating_consistency"] = _consistency(adapter)
    summary |= {measure: _number(adapter.get(measure)) for measure in _EVAL_MEASURES}
    summary["base_rating_consistency"] = _consistency(base)
    summary["base_perplexity"] = _number(base.get("perplexity"))
    return summary


def _consistency(result: dict[str, Any]) -> float | None:
    consistency = result.get("rating_consistency")
    return _number(consistency.get("overall")) if isinstance(consistency, dict) else None


def _read_json(file: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("unreadable %s: %s", file, exc)
        return None
    return data if isinstance(data, dict) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
