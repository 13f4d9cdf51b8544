"""What a worker does with a fine-tuning job: run its training process and follow it to the end.

The training runs in a process of its own (``app.finetune.job_process``, in the job's folder),
never in the worker: it sets its own priority and threads, may hold a GPU for weeks, and is
stopped with a checkpoint rather than cut short. Every ``poll_s`` the worker copies what the
process wrote (``status.json``: step, governor state, ETA; new lines of ``train_log.jsonl``) into
the job's row and passes on what the row asks for: a pause (``control.json``), a cancel (SIGTERM,
then the job ends ``cancelled``).

When the worker stops, the process saves a checkpoint and exits, and the job goes back to the
queue; when the worker dies, the process notices its parent has gone and does the same, and the
job is taken over as a dead worker's. Either way the next run continues from that checkpoint on
the same loss curve.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.config import FinetuneSettings
from app.core.errors import DatabaseUnavailable
from app.core.logger import get_logger
from app.jobs import finetune_records as records
from app.jobs.queue import WorkerStopping
from app.jobs.store import JobStore, LeaseLost
from app.recipes.job_files import (
    CONTROL_FILE,
    ERROR_FILE,
    EVAL_FILE,
    EXIT_DONE,
    EXIT_EVAL_FAILED,
    EXIT_STOPPED,
    JOB_FILE,
    LOG_FILE,
    PROCESS_LOG,
    STATUS_FILE,
    read_json,
    write_json_atomic,
)
from app.retriever.indexer import failure_reason

log = get_logger(__name__)

KIND = records.KIND


@dataclass
class _Follower:
    """Reads what the training process wrote since the last look."""

    output: Path
    offset: int = 0
    tail: bytes = b""
    synced: tuple[dict[str, int], dict[str, Any]] | None = None
    """The progress and state last stored."""

    def new_entries(self) -> list[dict[str, Any]]:
        """Log lines appended since the last call (all of them again after the log was cut
        back on a resume: they are stored by step, so re-reading replaces, never duplicates)."""
        path = self.output / LOG_FILE
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:
            self.offset, self.tail = 0, b""
        with path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        self.offset += len(chunk)
        lines = (self.tail + chunk).split(b"\n")
        self.tail = lines.pop()
        entries = []
        for line in lines:
            try:
                entry = logged_step(line)
            except ValueError:
                continue
            if entry is not None:
                entries.append(entry)
        return entries


def logged_step(line: bytes) -> dict[str, Any] | None:
    """One logged step, or ``None`` for a blank line; ``ValueError`` for a broken one."""
    if not line.strip():
        return None
    entry = json.loads(line)
    if not isinstance(entry, dict) or not isinstance(entry.get("step"), int):
        raise ValueError("not a logged step")
    return entry


def job_state(output: Path, payload: dict[str, Any]) -> tuple[dict[str, int], dict[str, Any]]:
    """The job's progress and state as its folder shows them now."""
    status = read_json(output / STATUS_FILE) or {}
    total = int(status.get("total_steps") or payload.get("total_steps") or 0)
    progress = {"done": int(status.get("step") or 0), "total": total}
    trainer_state = status.get("state")
    evaluating = trainer_state == "finished" and bool(payload.get("evaluation"))
    governor = None
    if trainer_state in ("running", "paused"):
        governor = {
            "state": trainer_state,
            "reason": status.get("reason"),
            "since": status.get("since"),
            "resumes_at": status.get("resumes_at"),
        }
    state = {
        "phase": "evaluating" if evaluating else "training",
        "governor": governor,
        "eta_s": status.get("eta_s") if trainer_state == "running" else None,
    }
    return progress, state


class FinetuneRunner:
    """Runs fine-tuning jobs; ``stopping`` set makes a running job checkpoint and hand itself back."""

    def __init__(
        self,
        jobs: JobStore,
        settings: FinetuneSettings,
        stopping: threading.Event,
        *,
        poll_s: float = 1.0,
        log_level: str = "INFO",
    ) -> None:
        self._jobs = jobs
        self._settings = settings
        self._stopping = stopping
        self._poll_s = poll_s
        self._log_level = log_level

    def run(self, job_id: str) -> None:
        """Run (or continue) job ``job_id`` to its end."""
        claimed = self._jobs.claim(job_id)
        if claimed is None:
            return
        job, lease = claimed
        process: subprocess.Popen[bytes] | None = None
        try:
            output = Path(job.payload["output_dir"])
            output.mkdir(parents=True, exist_ok=True)
            write_json_atomic(
                output / JOB_FILE,
                {"config": job.payload["config"], "evaluation": job.payload.get("evaluation")},
            )
            paused = records.pause_requested(self._jobs, job_id)
            write_json_atomic(output / CONTROL_FILE, {"paused": paused})
            log.info("job %s: training in %s", job_id, output)
            process = self._start(output, job.payload.get("device", "auto"))
            self._follow(job_id, lease, job.payload, output, process, paused)
        except LeaseLost:
            log.warning("job %s: another worker took it over; this run stops", job_id)
            self._stop(process)
        except (WorkerStopping, DatabaseUnavailable):
            # Handed back, or run again once the database is back; the checkpoint stays.
            self._stop(process)
            raise
        except Exception as exc:
            # Anything else ends the job (a full disk, a folder it may not write, a bug): a job
            # left running would have no one to finish it.
            log.exception("job %s failed", job_id)
            self._stop(process)
            self._jobs.finish(
                job_id,
                lease,
                "failed",
                # dict(code=...): the web UI's list of error codes is read from calls.
                dict(code="internal_error", message=failure_reason(exc), status=500),
            )
        except BaseException:
            self._stop(process)
            raise

    def _start(self, output: Path, device: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        if device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        elif device.startswith("cuda:"):
            env["CUDA_VISIBLE_DEVICES"] = device.removeprefix("cuda:")
        command = [
            sys.executable,
            "-m",
            "app.finetune.job_process",
            str(output),
            "--parent-pid",
            str(os.getpid()),
            "--log-level",
            self._log_level,
        ]
        with (output / PROCESS_LOG).open("ab") as process_log:
            # A session of its own: a Ctrl-C in the server's terminal reaches the worker, which
            # stops the training with a checkpoint, not the training directly.
            return subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=process_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _follow(
        self,
        job_id: str,
        lease: str,
        payload: dict[str, Any],
        output: Path,
        process: subprocess.Popen[bytes],
        paused: bool,
    ) -> None:
        follower = _Follower(output)
        while True:
            exited = process.poll()
            cancel, pause = self._sync(job_id, lease, payload, output, follower)
            if pause != paused:
                paused = pause
                write_json_atomic(output / CONTROL_FILE, {"paused": paused})
                log.info("job %s: %s", job_id, "pausing" if paused else "going on")
            if exited is not None:
                break
            if cancel:
                self._stop(process)
                self._sync(job_id, lease, payload, output, follower)
                self._jobs.finish(job_id, lease, "cancelled")
                log.info("job %s: cancelled", job_id)
                return
            if self._stopping.is_set():
                self._stop(process)
                self._sync(job_id, lease, payload, output, follower)
                self._jobs.release(job_id, lease)
                log.info("job %s: checkpointed and handed back, the worker is stopping", job_id)
                raise WorkerStopping(job_id)
            self._stopping.wait(self._poll_s)
        self._end(job_id, lease, output, process.returncode)

    def _sync(
        self,
        job_id: str,
        lease: str,
        payload: dict[str, Any],
        output: Path,
        follower: _Follower,
    ) -> tuple[bool, bool]:
        progress, state = job_state(output, payload)
        entries = follower.new_entries()
        if not entries and (progress, state) == follower.synced:
            # Nothing new (a paused run, a long step): no write, so no event for followers.
            return records.flags(self._jobs, job_id, lease)
        answer = records.sync(
            self._jobs, job_id, lease, progress=progress, state=state, entries=entries
        )
        follower.synced = (progress, state)
        return answer

    def _end(self, job_id: str, lease: str, output: Path, returncode: int) -> None:
        done_state = {"phase": "done", "governor": None, "eta_s": None, "adapter_ready": True}
        if returncode in (EXIT_DONE, EXIT_EVAL_FAILED):
            evaluated = read_json(output / EVAL_FILE)
            problem = read_json(output / ERROR_FILE) if returncode == EXIT_EVAL_FAILED else None
            records.set_state(
                self._jobs,
                job_id,
                {
                    **done_state,
                    "eval": evaluated,
                    "eval_error": _error(problem) if problem else None,
                },
            )
            self._jobs.finish(job_id, lease, "succeeded")
            log.info("job %s: succeeded", job_id)
            return
        problem = read_json(output / ERROR_FILE)
        if problem is not None:
            error = _error(problem)
        elif returncode == EXIT_STOPPED:
            # dict(code=...): the web UI's list of error codes is read from calls.
            error = _error(dict(code="training_failed", message="The training stopped on its own."))
        else:
            cause = (
                f"was killed by {signal.Signals(-returncode).name} (out of memory?)"
                if returncode < 0
                else f"exited with status {returncode}"
            )
            error = _error(
                dict(
                    code="training_failed",
                    message=f"The training process {cause}; see {output / PROCESS_LOG}.",
                )
            )
        records.set_state(self._jobs, job_id, {"phase": "done", "governor": None, "eta_s": None})
        self._jobs.finish(job_id, lease, "failed", error)
        log.warning("job %s: failed: %s", job_id, error["message"])

    def _stop(self, process: subprocess.Popen[bytes] | None) -> None:
        """Ask the training process to checkpoint and exit; kill it if it outstays the grace."""
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=self._settings.stop_grace_s)
        except subprocess.TimeoutExpired:
            log.warning("training process %d did not stop; killing it", process.pid)
            process.kill()
            process.wait()


def _error(problem: dict[str, Any]) -> dict[str, Any]:
    """The job's error from the training process's ``error.json``."""
    code = str(problem.get("code") or "training_failed")
    status = 422 if code in ("invalid_input", "not_found", "unsupported") else 500
    return {
        "code": code,
        "message": str(problem.get("message", "")),
        "params": {},
        "status": status,
    }
