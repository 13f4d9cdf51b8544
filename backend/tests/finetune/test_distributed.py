"""Training in two processes over gloo, launched with the shipped accelerate configs.

Both layouts must follow the single-process loss curve: replicated (every process holds the base,
the trainer sums adapter gradients) and sharded (FSDP2 splits base, adapter and optimizer state).
Checkpoints hold whole tensors keyed by name, so a sharded run resumes in one process and a
single-process run resumes sharded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from app.cli import main
from app.core.errors import InvalidInput
from app.finetune.train import check_shardable
from app.recipes.train_config import TrainConfig

BACKEND = Path(__file__).resolve().parents[2]
CONFIGS = BACKEND.parent / "deploy" / "accelerate"

STEPS = 6


def train_args(model: Path, data: Path) -> list[str]:
    return [
        "finetune", "train", "--model", str(model), "--data", str(data),
        "--max-steps", str(STEPS), "--save-every", "3", "--micro-batch-size", "2",
        "--grad-accum", "2", "--max-seq-len", "256", "--lr", "3e-3", "--lora-dropout", "0",
        "--log-every", "1", "--max-threads", "1", "--nice", "0", "--no-progress",
    ]  # fmt: skip


def launch(config: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    """``accelerate launch --config_file deploy/accelerate/CONFIG -m app.cli ARGS``, 2 processes."""
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2"]
    return subprocess.run(
        [
            *launcher,
            "--main_process_port",
            "0",
            "--config_file",
            str(CONFIGS / config),
            "-m",
            "app.cli",
            *args,
        ],
        cwd=BACKEND,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def launch_ok(config: str, args: list[str]) -> None:
    result = launch(config, args)
    assert result.returncode == 0, result.stderr[-3000:]


def losses(output: Path) -> list[float]:
    lines = (output / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["step"] for e in entries] == list(range(1, STEPS + 1))
    return [e["loss"] for e in entries]


def assert_same_adapter(a: Path, b: Path) -> None:
    first = load_file(str(a / "adapter_model.safetensors"))
    second = load_file(str(b / "adapter_model.safetensors"))
    assert first.keys() == second.keys()
    for name, tensor in first.items():
        # Six Adam steps amplify summation-order differences of fp32 reductions a little.
        torch.testing.assert_close(second[name], tensor, rtol=0, atol=1e-4, msg=name)


@pytest.fixture(scope="module")
def single(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, nsmc_sample: Path
) -> Path:
    """The reference: the same run in this process."""
    output = tmp_path_factory.mktemp("single") / "run"
    assert main([*train_args(tiny_model_dir, nsmc_sample), "--output", str(output)]) == 0
    return output


@pytest.mark.parametrize(
    ("config", "sharding"), [("multi_gpu.yaml", "none"), ("fsdp.yaml", "fsdp")]
)
def test_two_processes_follow_the_single_process_run(
    tmp_path: Path,
    tiny_model_dir: Path,
    nsmc_sample: Path,
    single: Path,
    config: str,
    sharding: str,
) -> None:
    output = tmp_path / "run"
    launch_ok(config, [*train_args(tiny_model_dir, nsmc_sample), "--output", str(output)])

    record = json.loads((output / "run.json").read_text(encoding="utf-8"))
    assert record["processes"] == 2 and record["sharding"] == sharding
    assert (
        record["trainable_params"]
        == json.loads((single / "run.json").read_text())["trainable_params"]
    )
    assert losses(output) == pytest.approx(losses(single), abs=1e-5)
    assert_same_adapter(single, output)

    # The sharded run's checkpoint holds whole tensors: one process resumes it, in a moved folder.
    moved = tmp_path / "moved"
    shutil.move(output, moved)
    (moved / "adapter_model.safetensors").unlink()
    assert main(["finetune", "train", "--output", str(moved), "--resume", "--no-progress"]) == 0
    assert losses(moved) == pytest.approx(losses(single), abs=1e-5)
    assert_same_adapter(single, moved)
    assert not output.exists()


def test_a_single_process_checkpoint_resumes_sharded(tmp_path: Path, single: Path) -> None:
    resumed = tmp_path / "resumed"
    shutil.copytree(single, resumed)
    (resumed / "adapter_model.safetensors").unlink()
    launch_ok(
        "fsdp.yaml", ["finetune", "train", "--output", str(resumed), "--resume", "--no-progress"]
    )
    assert json.loads((resumed / "run.json").read_text(encoding="utf-8"))["sharding"] == "fsdp"
    assert losses(resumed) == pytest.approx(losses(single), abs=1e-5)
    assert_same_adapter(single, resumed)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "qlora"}, "QLoRA cannot be sharded"),
        ({"micro_batch_size": 1, "grad_accum": 3}, "must be a multiple of the number of processes"),
    ],
)
def test_sharding_refuses_qlora_and_uneven_steps(change: dict[str, Any], message: str) -> None:
    config = replace(TrainConfig(data="reviews.tsv", output="run", micro_batch_size=2), **change)
    with pytest.raises(InvalidInput, match=message):
        check_shardable(config, processes=2)
    check_shardable(replace(config, method="lora", micro_batch_size=2, grad_accum=1), processes=2)
