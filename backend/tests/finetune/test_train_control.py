"""The trainer under control: a user's pause, the training hours, a stop at any step, status.json.

The governor's sleep is injected: it returns at once and lets the test act after a given step
(the duty cycle's sleep follows every step) or during a pause (each poll), so the tests follow
the run step by step without waiting for time to pass.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.finetune.checkpoint import checkpoint_dirs
from app.finetune.governor import GovernorSettings, LoadGovernor
from app.finetune.train import run_training, save, setup, train
from app.recipes.train_config import TrainConfig

BACKEND = Path(__file__).resolve().parents[2]
POLL_S = 1000.0  # told apart from the duty cycle's sleeps, which are far shorter here
STEPS = 8
FLAGS = [
    "--max-steps", str(STEPS), "--micro-batch-size", "2", "--grad-accum", "2",
    "--max-seq-len", "256", "--lr", "3e-3", "--lora-dropout", "0.1", "--log-every", "1",
    "--save-every", "1000", "--max-threads", "1", "--nice", "0", "--no-progress",
]  # fmt: skip


def config(model: Path, data: Path, output: Path, **governor: Any) -> TrainConfig:
    """The run ``FLAGS`` describe, with a dropout so that resuming must restore the RNG."""
    return TrainConfig(
        model=str(model),
        data=str(data),
        output=str(output),
        max_steps=STEPS,
        micro_batch_size=2,
        grad_accum=2,
        max_seq_len=256,
        lr=3e-3,
        lora_dropout=0.1,
        log_every=1,
        save_every=1000,
        progress=False,
        governor=GovernorSettings(niceness=0, max_threads=1, **governor),
    )


def losses(output: Path) -> list[tuple[int, float]]:
    lines = (output / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [(entry["step"], entry["loss"]) for entry in map(json.loads, lines)]


def assert_same_curve(got: list[tuple[int, float]], expected: list[tuple[int, float]]) -> None:
    assert [step for step, _ in got] == list(range(1, STEPS + 1))
    for (step, loss), (_, want) in zip(got, expected, strict=True):
        assert abs(loss - want) <= 1e-6 * max(1.0, abs(want)), f"step {step}: {loss} != {want}"


def status(output: Path) -> dict[str, Any]:
    return json.loads((output / "status.json").read_text(encoding="utf-8"))


def checkpoint_steps(output: Path) -> list[int]:
    return [int(path.name.removeprefix("step-")) for path in checkpoint_dirs(output)]


def set_paused(output: Path, paused: bool) -> None:
    """Write control.json as the job's worker does: whole, by rename."""
    partial = output / ".control.json.tmp"
    partial.write_text(json.dumps({"paused": paused}), encoding="utf-8")
    partial.replace(output / "control.json")


class Script:
    """The governor's sleep: calls ``after_step(n)`` once step ``n`` has computed and
    ``during_pause(k)`` at the ``k``-th poll of the run's pauses; never sleeps."""

    def __init__(self) -> None:
        self.steps = self.polls = 0
        self.after_step: Callable[[int], None] = lambda n: None
        self.during_pause: Callable[[int], None] = lambda k: None

    def sleep(self, seconds: float) -> None:
        if seconds == POLL_S:
            self.polls += 1
            self.during_pause(self.polls)
        else:
            self.steps += 1
            self.after_step(self.steps)


def scripted_governor(
    cfg: TrainConfig, script: Script, **kwargs: Any
) -> tuple[LoadGovernor, threading.Event]:
    stop = threading.Event()
    governor = LoadGovernor(
        cfg.governor,
        control_path=Path(cfg.output) / "control.json",
        stop=stop,
        sleep=script.sleep,
        **kwargs,
    )
    return governor, stop


def train_scripted(cfg: TrainConfig, governor: LoadGovernor) -> bool:
    """``run_training`` with the given governor; whether the run finished."""
    Path(cfg.output).mkdir(parents=True, exist_ok=True)
    run = setup(cfg, governor=governor)
    if not train(run):
        return False
    save(run)
    return True


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, nsmc_sample: Path
) -> list[tuple[int, float]]:
    """The loss curve of the run without any pause or stop."""
    output = tmp_path_factory.mktemp("reference") / "run"
    assert run_training(config(tiny_model_dir, nsmc_sample, output)) == output
    assert status(output)["state"] == "finished"
    return losses(output)


def test_a_user_pause_checkpoints_shows_in_status_and_changes_nothing(
    tmp_path: Path, tiny_model_dir: Path, nsmc_sample: Path, reference: list[tuple[int, float]]
) -> None:
    output = tmp_path / "run"
    cfg = config(tiny_model_dir, nsmc_sample, output, duty_cycle=0.5, poll_s=POLL_S)
    script = Script()
    seen: dict[str, Any] = {}

    def pause_after_three(n: int) -> None:
        if n == 3:
            set_paused(output, True)

    def look_then_resume(k: int) -> None:
        seen.setdefault("status", status(output))
        seen.setdefault("checkpoints", checkpoint_steps(output))
        if k == 2:
            set_paused(output, False)

    script.after_step, script.during_pause = pause_after_three, look_then_resume
    governor, _ = scripted_governor(cfg, script)
    assert train_scripted(cfg, governor)

    paused = seen["status"]
    assert set(paused) == {
        "step", "total_steps", "state", "reason", "since", "resumes_at", "eta_s", "updated_at"
    }  # fmt: skip
    assert (paused["step"], paused["total_steps"]) == (3, STEPS)
    assert (paused["state"], paused["reason"], paused["resumes_at"]) == ("paused", "user", None)
    assert isinstance(paused["eta_s"], float) and paused["eta_s"] > 0
    datetime.fromisoformat(paused["since"])
    datetime.fromisoformat(paused["updated_at"])
    assert seen["checkpoints"] == [3]  # saved as the pause began: a kill now loses nothing
    assert script.polls == 2

    done = status(output)
    assert (done["step"], done["state"], done["reason"], done["eta_s"]) == (
        STEPS, "finished", None, 0.0
    )  # fmt: skip
    assert_same_curve(losses(output), reference)
    record = json.loads((output / "run.json").read_text(encoding="utf-8"))
    assert record["governor_stats"]["pauses"] == {"user": 1}
    assert set(record["governor_stats"]["paused_s"]) == {"user"}


def test_a_stop_during_a_pause_then_resume_continues_the_same_curve(
    tmp_path: Path, tiny_model_dir: Path, nsmc_sample: Path, reference: list[tuple[int, float]]
) -> None:
    output = tmp_path / "run"
    cfg = config(tiny_model_dir, nsmc_sample, output, duty_cycle=0.5, poll_s=POLL_S)
    script = Script()
    governor, stop = scripted_governor(cfg, script)

    def pause_after_five(n: int) -> None:
        if n == 5:
            set_paused(output, True)

    def stop_at_the_second_poll(k: int) -> None:
        if k == 2:
            stop.set()

    script.after_step, script.during_pause = pause_after_five, stop_at_the_second_poll
    assert not train_scripted(cfg, governor)

    stopped = status(output)
    assert (stopped["step"], stopped["state"], stopped["reason"]) == (5, "stopped", None)
    assert checkpoint_steps(output) == [5]  # the pause's checkpoint; nothing new to save
    assert [step for step, _ in losses(output)] == [1, 2, 3, 4, 5]

    set_paused(output, False)  # the worker's resume
    assert run_training(cfg, resume=True) == output
    assert status(output)["state"] == "finished"
    assert_same_curve(losses(output), reference)


def test_a_stop_at_any_step_then_resume_continues_the_same_curve(
    tmp_path: Path, tiny_model_dir: Path, nsmc_sample: Path, reference: list[tuple[int, float]]
) -> None:
    output = tmp_path / "run"
    cfg = config(tiny_model_dir, nsmc_sample, output, duty_cycle=0.5)
    script = Script()
    governor, stop = scripted_governor(cfg, script)

    def stop_after_six(n: int) -> None:
        if n == 6:
            stop.set()

    script.after_step = stop_after_six
    assert not train_scripted(cfg, governor)
    assert status(output)["state"] == "stopped" and status(output)["step"] == 6
    assert checkpoint_steps(output) == [6]

    args = ["finetune", "train", "--output", str(output), "--resume", "--no-progress"]
    assert main([*args, "--duty-cycle", "1"]) == 0
    assert_same_curve(losses(output), reference)


def test_outside_the_hours_it_waits_with_no_eta_before_a_first_step(
    tmp_path: Path, tiny_model_dir: Path, nsmc_sample: Path
) -> None:
    output = tmp_path / "run"
    cfg = config(tiny_model_dir, nsmc_sample, output, schedule="22:00-06:00", poll_s=POLL_S)
    seoul = timezone(timedelta(hours=9))
    clock = {"now": datetime(2026, 12, 1, 21, 58, 0, tzinfo=seoul)}
    script = Script()
    seen: list[dict[str, Any]] = []

    def a_minute_later(k: int) -> None:
        seen.append({**status(output), "checkpoints": checkpoint_steps(output)})
        clock["now"] += timedelta(minutes=1)

    script.during_pause = a_minute_later
    governor, _ = scripted_governor(cfg, script, now=lambda: clock["now"])
    assert train_scripted(cfg, governor)
    assert script.polls == 2  # 21:58 and 21:59; at 22:00 the window opens
    first = seen[0]
    assert (first["step"], first["state"], first["reason"]) == (0, "paused", "schedule")
    assert first["resumes_at"] == "2026-12-01T22:00:00+09:00"
    assert first["since"] == "2026-12-01T21:58:00+09:00"
    assert first["eta_s"] is None
    assert first["checkpoints"] == [0]  # so that --resume works even after a kill right now
    assert status(output)["state"] == "finished"


def test_sigterm_stops_the_command_at_a_checkpoint(
    tmp_path: Path, tiny_model_dir: Path, nsmc_sample: Path, reference: list[tuple[int, float]]
) -> None:
    output = tmp_path / "run"
    command = [
        sys.executable, "-m", "app.cli", "finetune", "train", "--model", str(tiny_model_dir),
        "--data", str(nsmc_sample), "--output", str(output), *FLAGS,
        # Slow enough for the signal to land mid-run; the duty cycle does not change the numbers.
        "--duty-cycle", "0.05",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=BACKEND, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 300
        log = output / "train_log.jsonl"
        while not (log.exists() and log.read_text(encoding="utf-8").strip()):
            assert process.poll() is None, "the run ended before it could be stopped"
            assert time.monotonic() < deadline, "no step was logged"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "--resume" in stderr
    stopped = status(output)
    assert stopped["state"] == "stopped" and 1 <= stopped["step"] < STEPS
    assert checkpoint_steps(output) == [stopped["step"]]

    resume = ["finetune", "train", "--output", str(output), "--resume", "--no-progress"]
    assert main([*resume, "--duty-cycle", "1"]) == 0
    assert_same_curve(losses(output), reference)
