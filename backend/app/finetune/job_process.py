"""One fine-tuning job's training process: ``python -m app.finetune.job_process OUTPUT``.

A worker starts it for a job of kind ``finetune`` and follows it through files in ``OUTPUT``
(the job's folder), so that the training runs in a process of its own, at its own priority,
and the worker stays responsive:

- ``job.json`` (written by the worker): the run's settings (``config``, as the API validated
  them) and what to evaluate afterwards (``evaluation``: ``data``, ``settings``, ``round``);
- ``control.json`` (the worker): ``{"paused": bool}``, read by the trainer before each step;
- ``status.json``, ``train_log.jsonl``, ``run.json``, checkpoints (the trainer);
- ``eval.json`` and ``eval.md`` (this process): the ``rag finetune eval`` report, with the
  ``round`` it answers, once the evaluation of that round is done;
- ``error.json`` (this process): ``{"code", "message", "phase"}`` when it failed.

The process is idempotent: started again on the same folder it continues the run from its last
checkpoint (exactly the same loss curve), skips training that has finished and an evaluation
already done for the requested round. SIGTERM, SIGINT or the end of the worker that started it
(``--parent-pid``) make it save a checkpoint after the current step and exit with
``EXIT_STOPPED``. A lock on the folder keeps a second process (a worker that took the job over
while the first was still saving) from training on it at the same time.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.core.errors import RagError
from app.core.logger import get_logger, setup_logging
from app.core.parent_watch import watch_parent
from app.recipes.eval_settings import EvalSettings
from app.recipes.job_files import (
    ERROR_FILE,
    EVAL_FILE,
    EXIT_DONE,
    EXIT_EVAL_FAILED,
    EXIT_FAILED,
    EXIT_STOPPED,
    JOB_FILE,
    read_json,
    write_json_atomic,
)
from app.recipes.settings_fields import from_mapping
from app.recipes.train_config import RUN_FILE, train_config_from_dict

log = get_logger("finetune.job")

LOCK_FILE = ".lock"
_LOCK_POLL_S = 0.5


def training_finished(output: Path) -> bool:
    """Whether the run in ``output`` has saved its final adapter."""
    run_file = output / RUN_FILE
    if not run_file.is_file() or not (output / "adapter_config.json").is_file():
        return False
    try:
        record = json.loads(run_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(record.get("finished_at"))


@contextmanager
def folder_lock(output: Path, stop: threading.Event) -> Iterator[bool]:
    """Hold the folder's lock while the body runs; yields ``False`` when ``stop`` came first."""
    with (output / LOCK_FILE).open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if stop.wait(_LOCK_POLL_S):
                    yield False
                    return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_job(output: Path, stop: threading.Event) -> int:
    """Train (or continue training) and evaluate the job in ``output``; the exit status."""
    job = read_json(output / JOB_FILE)
    if job is None:
        message = f"{output / JOB_FILE} is missing or not JSON"
        return _failed(output, "setup", code="invalid_input", message=message)
    with folder_lock(output, stop) as held:
        if not held:
            return EXIT_STOPPED
        (output / ERROR_FILE).unlink(missing_ok=True)
        try:
            if not training_finished(output) and not _train(output, job, stop):
                return EXIT_STOPPED
        except RagError as exc:
            return _failed(
                output, "training", code=exc.code, message=exc.message, params=exc.params
            )
        except Exception as exc:
            log.exception("training failed")
            return _failed(
                output, "training", code="training_failed", message=f"{type(exc).__name__}: {exc}"
            )
        evaluation = job.get("evaluation")
        if not evaluation or _evaluated(output, evaluation):
            return EXIT_DONE
        try:
            _evaluate(output, job, evaluation)
        except RagError as exc:
            _failed(output, "evaluation", code=exc.code, message=exc.message, params=exc.params)
            return EXIT_EVAL_FAILED
        except Exception as exc:
            log.exception("evaluation failed")
            _failed(
                output,
                "evaluation",
                code="evaluation_failed",
                message=f"{type(exc).__name__}: {exc}",
            )
            return EXIT_EVAL_FAILED
    return EXIT_DONE


def _train(output: Path, job: dict[str, Any], stop: threading.Event) -> bool:
    """Whether training ran to its end (``False``: stopped, with a checkpoint to resume from)."""
    from app.finetune.checkpoint import latest_resumable
    from app.finetune.train import run_training

    config = train_config_from_dict({**job["config"], "output": str(output), "progress": False})
    resume = latest_resumable(output) is not None
    return run_training(config, resume=resume, stop=stop) is not None


def _evaluated(output: Path, evaluation: dict[str, Any]) -> bool:
    done = read_json(output / EVAL_FILE)
    return done is not None and done.get("round") == evaluation.get("round")


def _evaluate(output: Path, job: dict[str, Any], evaluation: dict[str, Any]) -> None:
    from app.finetune.evaluate import format_markdown, run_eval

    settings: EvalSettings = from_mapping(EvalSettings, evaluation.get("settings") or {})
    report = run_eval(
        job["config"]["model"],
        Path(evaluation["data"]),
        Path(job["config"]["data"]),
        adapter=output,
        settings=settings,
    )
    # As `rag finetune eval --out` writes it, so that serving reads it beside the adapter; the
    # round tells an evaluation asked for later from this one.
    (output / "eval.md").write_text(format_markdown(report), encoding="utf-8")
    write_json_atomic(output / EVAL_FILE, {**report, "round": evaluation.get("round")})


def _failed(
    output: Path,
    phase: str,
    *,
    code: str,
    message: str,
    params: Mapping[str, Any] | None = None,
) -> int:
    problem = {"phase": phase, "code": code, "message": message, "params": dict(params or {})}
    write_json_atomic(output / ERROR_FILE, problem)
    log.error("%s failed: %s", phase, message)
    return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.finetune.job_process")
    parser.add_argument("output", type=Path, help="the job's folder (holding job.json)")
    parser.add_argument("--parent-pid", type=int, default=None, help="stop when it has gone")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s: saving a checkpoint and stopping", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    if args.parent_pid is not None:
        watch_parent(args.parent_pid, stop.set)
    return run_job(args.output, stop)


if __name__ == "__main__":
    sys.exit(main())
