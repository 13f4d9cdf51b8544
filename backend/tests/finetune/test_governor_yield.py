"""The governor yields: training hours, other processes' CPU and GPU use, a user's pause, a stop.

Everything runs on an injected clock, local time and sensors; nothing here waits for real time
except the stop test, which shows that a stop ends an hour-long poll.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from app.cli import build_parser
from app.core.errors import InvalidInput
from app.finetune.governor import GovernorSettings, GovernorState, LoadGovernor
from app.finetune.governor_sensors import ControlFile, PsutilCpuSensor
from app.recipes.train_config import train_config_from_dict
from app.recipes.training_schedule import inside, next_start, parse_schedule

SEOUL = timezone(timedelta(hours=9))


def at(hh_mm_ss: str, day: int = 1) -> datetime:
    """A local time on 1 December 2026 (or a later ``day``) in Seoul."""
    h, m, s = (int(x) for x in hh_mm_ss.split(":"))
    return datetime(2026, 12, day, h, m, s, tzinfo=SEOUL)


class World:
    """A monotonic clock and a local time that move together, only when slept or stepped.

    ``on_sleep`` runs after each sleep with the sleep's number (1, 2, ...), so a test can change
    the world while the governor waits.
    """

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.t = 0.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[int], None] = lambda n: None

    def clock(self) -> float:
        return self.t

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        self.on_sleep(len(self.sleeps))


class ScriptedLoad:
    """Readings in a fixed order, then the last one again."""

    def __init__(self, readings: list[float]) -> None:
        self.readings = readings
        self.reads = 0

    def read(self) -> float:
        value = self.readings[min(self.reads, len(self.readings) - 1)]
        self.reads += 1
        return value


class ScriptedGpu:
    """Other processes' GPU memory in a fixed order; a cool, quiet GPU otherwise."""

    def __init__(self, other_mib: list[float], temperature: float = 40.0) -> None:
        self.other = ScriptedLoad(other_mib)
        self.temperature = temperature

    def read(self) -> tuple[float, float]:
        return self.temperature, 100.0

    def other_processes_mib(self) -> float:
        return self.other.read()


def governor(world: World, states: list[GovernorState], **kwargs: object) -> LoadGovernor:
    settings = {"niceness": 0, "poll_s": 10.0}
    sensors = {k: kwargs.pop(k) for k in ("sensor", "cpu_sensor", "control_path") if k in kwargs}
    settings.update(kwargs)  # type: ignore[arg-type]
    return LoadGovernor(
        GovernorSettings(**settings),  # type: ignore[arg-type]
        **sensors,  # type: ignore[arg-type]
        on_state=states.append,
        sleep=world.sleep,
        clock=world.clock,
        now=world.now,
    )


def compute(gov: LoadGovernor, world: World, seconds: float) -> None:
    """One step that computes for ``seconds`` of the world's time."""
    assert gov.wait_to_run()
    with gov.step():
        world.t += seconds


def summary(states: list[GovernorState]) -> list[tuple[str, str | None]]:
    return [(s.state, s.reason) for s in states]


# ------------------------------------------------------------------------------ the schedule


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("21:59:59", False),
        ("22:00:00", True),
        ("23:30:00", True),
        ("00:00:00", True),
        ("07:59:59", True),
        ("08:00:00", False),
        ("12:30:00", True),
        ("13:00:00", False),
    ],
)
def test_windows_across_midnight(moment: str, expected: bool) -> None:
    windows = parse_schedule("22:00-08:00, 12:00-13:00")
    assert inside(windows, at(moment)) is expected


@pytest.mark.parametrize(
    ("moment", "opens"),
    [
        (at("08:00:00"), at("12:00:00")),
        (at("13:00:01"), at("22:00:00")),
        (at("22:00:00"), at("12:00:00", day=2)),  # the night's window has just opened
    ],
)
def test_the_next_window_start(moment: datetime, opens: datetime) -> None:
    got = next_start(parse_schedule("22:00-08:00,12:00-13:00"), moment)
    assert got == opens and got.utcoffset() == timedelta(hours=9)


def test_a_window_may_end_at_midnight() -> None:
    windows = parse_schedule("18:00-24:00")
    assert inside(windows, at("23:59:59")) and not inside(windows, at("00:00:00"))


@pytest.mark.parametrize(
    "schedule",
    ["", "22:00", "22:00-", "25:00-01:00", "22:60-23:00", "08:00-08:00", "00:00-24:00",
     "24:00-01:00", "24:30-01:00", "22:00-08:00;12:00-13:00", "night", "1" * 600],
)  # fmt: skip
def test_nonsense_schedules_are_refused(schedule: str) -> None:
    with pytest.raises(InvalidInput, match="schedule"):
        GovernorSettings(schedule=schedule)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_cpu_load", 0.0), ("max_cpu_load", 1.5), ("max_other_gpu_mib", -1.0),
     ("resume_after_s", -5.0)],
)  # fmt: skip
def test_nonsense_yield_limits_are_refused(field: str, value: float) -> None:
    with pytest.raises(InvalidInput, match=field):
        GovernorSettings(**{field: value})  # type: ignore[arg-type]


def test_the_job_body_and_the_command_line_take_the_same_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = {"data": "reviews.tsv", "output": "out", "governor": {"schedule": "22:00-8:00"}}
    assert train_config_from_dict(body).governor.windows == parse_schedule("22:00-08:00")
    with pytest.raises(InvalidInput, match="schedule"):
        train_config_from_dict({**body, "governor": {"schedule": "later"}})
    with pytest.raises(SystemExit):
        build_parser().parse_args(["finetune", "train", "--help"])
    shown = capsys.readouterr().out
    for flag in ("--schedule", "--max-cpu-load", "--max-other-gpu-mib", "--resume-after"):
        assert flag in shown


def test_outside_the_hours_it_waits_for_the_next_window() -> None:
    world = World(at("08:59:00"))
    states: list[GovernorState] = []
    gov = governor(world, states, schedule="08:00-09:00,10:00-11:00", poll_s=30.0)
    compute(gov, world, 60)  # starts inside the first window, ends outside it
    assert summary(states) == []
    compute(gov, world, 60)
    paused, running = states
    assert (paused.state, paused.reason) == ("paused", "schedule")
    assert paused.since == at("09:00:00")
    assert paused.resumes_at == at("10:00:00")
    assert (running.state, running.since) == ("running", at("10:00:00"))
    assert gov.stats.paused_s == {"schedule": 3600.0} and gov.stats.pauses == {"schedule": 1}
    assert gov.stats.compute_s == 120.0 and gov.stats.throttle_s == 0.0
    assert paused.to_dict() == {
        "state": "paused",
        "reason": "schedule",
        "since": "2026-12-01T09:00:00+09:00",
        "resumes_at": "2026-12-01T10:00:00+09:00",
    }


# ----------------------------------------------------------------------- other processes' load


def test_cpu_load_pauses_and_resumes_after_it_has_stayed_low() -> None:
    world = World(at("12:00:00"))
    states: list[GovernorState] = []
    load = ScriptedLoad([0.9, 0.2, 0.8, 0.1, 0.1, 0.1, 0.1])
    gov = governor(world, states, cpu_sensor=load, max_cpu_load=0.5, resume_after_s=30.0)
    compute(gov, world, 1)
    # 0.9 pauses; 0.2 starts the low spell and 0.8 breaks it; then low at 30, 40, 50 and 60 s:
    # 30 s low, it resumes.
    assert world.sleeps == [10.0] * 6
    assert summary(states) == [("paused", "cpu_load"), ("running", None)]
    assert states[0].resumes_at is None
    assert gov.stats.paused_s == {"cpu_load": 60.0}
    # While running the load is read once a poll interval, not before every step.
    reads = load.reads
    compute(gov, world, 1)
    assert load.reads == reads
    world.t += 10
    compute(gov, world, 1)
    assert load.reads == reads + 1


def test_another_process_on_the_gpu_pauses_the_run() -> None:
    world = World(at("12:00:00"))
    states: list[GovernorState] = []
    gpu = ScriptedGpu([100.0, 9000.0, 9000.0, 200.0, 200.0, 200.0])
    gov = governor(world, states, sensor=gpu, max_other_gpu_mib=1024.0, resume_after_s=20.0)
    compute(gov, world, 1)
    assert states == []
    compute(gov, world, 1)
    assert summary(states) == [("paused", "gpu_busy"), ("running", None)]
    assert gov.stats.paused_s == {"gpu_busy": 40.0}


class LoadUntil:
    """A CPU load that is high until the world's clock reaches ``until``, then nil."""

    def __init__(self, world: World, until: float) -> None:
        self.world, self.until = world, until

    def read(self) -> float:
        return 0.9 if self.world.t < self.until else 0.0


def test_precedence_of_reasons_and_a_pause_per_reason(tmp_path: Path) -> None:
    control = tmp_path / "control.json"
    control.write_text('{"paused": true}', encoding="utf-8")
    world = World(at("07:59:40"))
    gpu = ScriptedGpu([0.0], temperature=95.0)

    def change(n: int) -> None:
        if n == 2:  # 08:00:00: the user resumes, as the night's window closes
            control.write_text('{"paused": false}', encoding="utf-8")
        if n == 12:  # 08:01:40: the GPU has cooled down
            gpu.temperature = 60.0

    world.on_sleep = change
    states: list[GovernorState] = []
    gov = governor(
        world,
        states,
        control_path=control,
        sensor=gpu,
        cpu_sensor=LoadUntil(world, until=100.0),
        schedule="22:00-08:00,08:01-09:00",
        max_cpu_load=0.5,
        resume_after_s=0.0,
        max_gpu_temp_c=85.0,
    )
    compute(gov, world, 1)
    # Every reason holds at first; each shows once those above it have cleared.
    assert summary(states) == [
        ("paused", "user"),
        ("paused", "schedule"),
        ("paused", "cpu_load"),
        ("paused", "gpu_temperature"),
        ("running", None),
    ]
    assert [s.since for s in states] == [
        at("07:59:40"), at("08:00:00"), at("08:01:00"), at("08:01:20"), at("08:01:40")
    ]  # fmt: skip
    assert states[1].resumes_at == at("08:01:00")
    assert gov.stats.paused_s == {
        "user": 20.0,
        "schedule": 60.0,
        "cpu_load": 20.0,
        "gpu_temperature": 20.0,
    }
    assert gov.stats.pauses == dict.fromkeys(gov.stats.paused_s, 1)
    assert gov.stats.compute_s == 1.0 and gov.stats.throttle_s == 0.0


def test_a_pause_does_not_buy_full_speed_later() -> None:
    world = World(at("12:00:00"))
    states: list[GovernorState] = []
    load = ScriptedLoad([0.0, 0.9, 0.0])
    gov = governor(world, states, cpu_sensor=load, max_cpu_load=0.5, resume_after_s=0.0,
                   duty_cycle=0.5)  # fmt: skip
    compute(gov, world, 20)
    assert world.sleeps == [20.0]  # the duty cycle's idle time
    world.sleeps.clear()
    compute(gov, world, 20)  # paused for 10 s first, then 20 s of compute
    assert world.sleeps == [10.0, 10.0]  # the pause, then the rest of the 20 s owed
    world.sleeps.clear()
    compute(gov, world, 20)
    assert world.sleeps == [20.0]  # and no credit left from the pause
    assert gov.stats.paused_s == {"cpu_load": 10.0}
    assert gov.stats.compute_s == 60.0 and gov.stats.throttle_s == 50.0
    assert gov.stats.duty == pytest.approx(0.5)


# ------------------------------------------------------------------------- pause and stop


def test_a_user_pause_through_control_json(tmp_path: Path) -> None:
    control = tmp_path / "control.json"
    world = World(at("12:00:00"))
    states: list[GovernorState] = []
    gov = governor(world, states, control_path=control)
    compute(gov, world, 1)  # no file: not paused
    control.write_text("{not json", encoding="utf-8")
    compute(gov, world, 1)  # unreadable: not paused
    control.write_text('{"paused": true}', encoding="utf-8")

    def resume(n: int) -> None:
        if n == 3:
            partial = tmp_path / ".control.json.tmp"
            partial.write_text('{"paused": false}', encoding="utf-8")
            partial.replace(control)

    world.on_sleep = resume
    compute(gov, world, 1)
    assert summary(states) == [("paused", "user"), ("running", None)]
    assert gov.stats.paused_s == {"user": 30.0}


def test_control_json_is_read_again_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "control.json"
    path.write_text('{"paused": true }', encoding="utf-8")
    control = ControlFile(path)
    assert control.paused()
    seen = os.stat(path)
    # Same size, same inode, same modification time: taken as unchanged.
    with path.open("r+", encoding="utf-8") as f:
        f.write('{"paused": false}')
    os.utime(path, ns=(seen.st_atime_ns, seen.st_mtime_ns))
    assert control.paused()
    os.utime(path, ns=(seen.st_atime_ns, seen.st_mtime_ns + 1_000_000))
    assert not control.paused()
    path.write_text(json.dumps({"paused": "yes"}), encoding="utf-8")
    assert not control.paused()
    path.unlink()
    assert not control.paused()


def test_a_stop_ends_a_pause_at_once(tmp_path: Path) -> None:
    control = tmp_path / "control.json"
    control.write_text('{"paused": true}', encoding="utf-8")
    stop = threading.Event()
    paused = threading.Event()
    states: list[GovernorState] = []

    def seen(state: GovernorState) -> None:
        states.append(state)
        if state.state == "paused":
            paused.set()

    # Real waiting, an hour between polls: only the stop can end it within the test.
    gov = LoadGovernor(
        GovernorSettings(niceness=0, poll_s=3600.0),
        control_path=control,
        stop=stop,
        on_state=seen,
    )
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(gov.wait_to_run()))
    waiter.start()
    assert paused.wait(timeout=120)
    stop.set()
    waiter.join(timeout=120)
    assert not waiter.is_alive()
    assert result == [False]
    assert summary(states) == [("paused", "user"), ("stopped", None)]


def test_a_stop_while_running_is_seen_before_the_next_step() -> None:
    world = World(at("12:00:00"))
    states: list[GovernorState] = []
    gov = governor(world, states)
    compute(gov, world, 1)
    gov.stop.set()
    assert not gov.wait_to_run()
    assert summary(states) == [("stopped", None)]


def test_the_cpu_sensor_leaves_out_this_process() -> None:
    import psutil

    def machine() -> tuple[float, float, float]:
        t = psutil.cpu_times()
        total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
        own = psutil.Process().cpu_times()
        return total, total - t.idle - getattr(t, "iowait", 0.0), own.user + own.system

    sensor = PsutilCpuSensor()
    before = machine()
    spin_until = before[2] + 0.5
    while machine()[2] < spin_until:
        pass  # half a second of this process's own CPU time
    after = machine()
    load = sensor.read()
    total, busy, own = (b - a for a, b in zip(before, after, strict=True))
    # Without the subtraction the reading would be the whole busy share, own work included
    # (about half of the machine's time here). /proc/stat and this process's times count in
    # 10 ms ticks each, so the machine's busy time may read a few ticks below this process's.
    assert 0.0 <= load <= max(busy - own, 0.0) / total + 0.05


@pytest.mark.parametrize(
    ("visible", "index"), [(None, 0), ("", 0), ("3", 3), ("2,0", 2), ("GPU-1a2b", 0)]
)
def test_the_watched_gpu_is_the_one_torch_trains_on(
    monkeypatch: pytest.MonkeyPatch, visible: str | None, index: int
) -> None:
    from app.finetune.governor_sensors import watched_gpu_index

    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert watched_gpu_index() == index
