"""kill -9 in the middle of a run, then --resume: the loss curve is the uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.cli import main
from app.finetune.checkpoint import checkpoint_dirs

BACKEND = Path(__file__).resolve().parents[2]


def losses(output: Path) -> list[tuple[int, float]]:
    lines = (output / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [(entry["step"], entry["loss"]) for entry in map(json.loads, lines)]


def test_resume_after_kill_continues_the_same_loss_curve(
    tmp_path: Path, tiny_model_dir: Path, nsmc_sample: Path
) -> None:
    common = [
        "finetune", "train", "--model", str(tiny_model_dir), "--data", str(nsmc_sample),
        "--max-steps", "12", "--save-every", "4", "--micro-batch-size", "2", "--grad-accum", "2",
        "--max-seq-len", "256", "--lr", "3e-3", "--lora-dropout", "0.1", "--log-every", "1",
        "--max-threads", "1", "--nice", "0", "--no-progress",
    ]  # fmt: skip
    reference = tmp_path / "reference"
    assert main([*common, "--output", str(reference)]) == 0

    interrupted = tmp_path / "interrupted"
    # A low duty cycle stretches the run (the governor sleeps between steps) so the kill lands
    # mid-run; sleeping does not change the numbers.
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            *common,
            "--output",
            str(interrupted),
            "--duty-cycle",
            "0.1",
        ],
        cwd=BACKEND,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not checkpoint_dirs(interrupted) and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be interrupted"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    killed_at = [entry[0] for entry in losses(interrupted)]
    assert killed_at[-1] < 12

    assert (
        main(["finetune", "train", "--output", str(interrupted), "--resume", "--no-progress"]) == 0
    )
    got, expected = losses(interrupted), losses(reference)
    assert [step for step, _ in got] == list(range(1, 13))
    for (step, loss), (_, want) in zip(got, expected, strict=True):
        assert abs(loss - want) <= 1e-6 * max(1.0, abs(want)), f"step {step}: {loss} != {want}"
