"""The load governor: threads, niceness, duty-cycle accounting and GPU ceilings, as behaviour."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from app.cli import main
from app.core.errors import InvalidInput
from app.finetune.governor import GovernorSettings, LoadGovernor

BACKEND = Path(__file__).resolve().parents[2]


class ManualClock:
    """A clock that moves only when the test (or a sleep) moves it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedSensor:
    """GPU readings in a fixed order (no GPU on the test machine); repeats the last one."""

    def __init__(self, readings: list[tuple[float, float]]) -> None:
        self.readings = readings
        self.reads = 0

    def read(self) -> tuple[float, float]:
        reading = self.readings[min(self.reads, len(self.readings) - 1)]
        self.reads += 1
        return reading


def governed_steps(governor: LoadGovernor, clock: ManualClock, durations: list[float]) -> None:
    for seconds in durations:
        assert governor.wait_to_run()
        with governor.step():
            clock.now += seconds


def test_threads_are_capped() -> None:
    applied = LoadGovernor(GovernorSettings(max_threads=1, niceness=0)).apply()
    assert torch.get_num_threads() == 1
    assert applied == ["threads=1"]


@pytest.mark.parametrize(("duty", "idle_per_compute"), [(0.5, 1.0), (0.25, 3.0), (1.0, 0.0)])
def test_duty_cycle_sleeps_are_accounted(duty: float, idle_per_compute: float) -> None:
    clock = ManualClock()
    governor = LoadGovernor(
        GovernorSettings(duty_cycle=duty, niceness=0), sleep=clock.sleep, clock=clock
    )
    governed_steps(governor, clock, [2.0, 0.5, 1.5])
    assert governor.stats.compute_s == pytest.approx(4.0)
    assert governor.stats.throttle_s == pytest.approx(4.0 * idle_per_compute)
    assert sum(clock.sleeps) == pytest.approx(4.0 * idle_per_compute)
    assert governor.stats.duty == pytest.approx(duty)


def test_pauses_while_the_gpu_is_too_hot_and_counts_the_pause_as_idle() -> None:
    clock = ManualClock()
    sensor = ScriptedSensor([(90, 200), (88, 200), (82, 200), (79, 200), (70, 150)])
    settings = GovernorSettings(
        max_gpu_temp_c=85, temp_margin_c=5, poll_s=10, duty_cycle=0.5, niceness=0
    )
    governor = LoadGovernor(settings, sensor=sensor, sleep=clock.sleep, clock=clock)
    governed_steps(governor, clock, [1.0])
    # 90 is over 85: pause; resume only at 79, under 85 - 5; then the step computes for 1 s.
    assert clock.sleeps[:3] == [10, 10, 10]
    assert governor.stats.thermal_pauses == 1
    assert governor.stats.thermal_pause_s == pytest.approx(30)
    # The 30 s pause already exceeds the 1 s of idle that duty 0.5 owes: no extra sleep.
    assert governor.stats.throttle_s == 0
    governed_steps(governor, clock, [1.0])
    assert governor.stats.thermal_pauses == 1


def test_pauses_above_the_power_ceiling() -> None:
    clock = ManualClock()
    sensor = ScriptedSensor([(60, 310), (60, 290), (60, 250)])
    settings = GovernorSettings(max_gpu_power_w=300, power_margin=0.1, poll_s=5, niceness=0)
    governor = LoadGovernor(settings, sensor=sensor, sleep=clock.sleep, clock=clock)
    governed_steps(governor, clock, [1.0])
    assert clock.sleeps == [5, 5]  # 290 W is under 300 but not under 270: wait once more


def test_niceness_is_raised_for_the_process_and_threads_it_starts() -> None:
    script = (
        "import os, threading\n"
        "from app.finetune.governor import GovernorSettings, LoadGovernor\n"
        "print(os.nice(0))\n"
        "LoadGovernor(GovernorSettings(niceness=5)).apply()\n"
        "result = []\n"
        "worker = threading.Thread(target=lambda: result.append(os.nice(0)))\n"
        "worker.start(); worker.join()\n"
        "print(os.nice(0), result[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=BACKEND, capture_output=True, text=True, check=True
    ).stdout.split()
    before, after, in_thread = (int(x) for x in out)
    assert after == in_thread == min(before + 5, 19)


@pytest.mark.parametrize(
    "settings",
    [
        {"duty_cycle": 0},
        {"duty_cycle": 1.5},
        {"niceness": 25},
        {"max_threads": 0},
        {"gpu_memory_fraction": 2.0},
    ],
)
def test_nonsense_limits_are_rejected(settings: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        GovernorSettings(**settings)


def test_training_runs_under_the_governor(
    tmp_path: Path, tiny_model_dir: Path, rating_sentences_file: Path
) -> None:
    output = tmp_path / "governed"
    args = [
        "finetune", "train", "--model", str(tiny_model_dir), "--data", str(rating_sentences_file),
        "--output", str(output), "--max-steps", "3", "--micro-batch-size", "1", "--grad-accum", "1",
        "--nice", "0", "--max-threads", "1", "--duty-cycle", "0.5", "--no-progress",
    ]  # fmt: skip
    assert main(args) == 0
    record = json.loads((output / "run.json").read_text(encoding="utf-8"))
    assert record["governor_applied"] == ["threads=1", "duty_cycle=0.5"]
    stats = record["governor_stats"]
    # Every step's owed idle time is slept before the next one starts.
    assert stats["throttle_s"] >= stats["compute_s"] * 0.999
