"""Crash-safe checkpoints of a LoRA run: adapter, optimizer, scheduler, RNG and data position.

Layout under the run's output folder::

    checkpoints/step-000200/   adapter_config.json, adapter_model.safetensors, trainer_state.json,
                               optimizer.pt, scheduler.pt, rng.pt   (the last ones: newest only)
    checkpoints/step-000400/   ...

A checkpoint is written into a hidden temporary folder, flushed to disk, and renamed into place:
the rename is atomic, so a crash (or ``kill -9``) while saving leaves the previous checkpoints
untouched and at worst a temporary folder that the next save clears away.

Tensors are saved whole and optimizer state is keyed by parameter name, so a checkpoint does not
depend on how many processes wrote it or whether they sharded the model (``sharding.py``).

Retention is split by kind: ``keep_adapters`` adapter snapshots stay (they are small and useful
to compare), but optimizer state (twice the adapter's size, and only needed to resume) is kept in
the newest ``keep_optimizer`` checkpoints only.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from app.core.errors import Conflict
from app.finetune.sharding import full_tensor, like

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
_RESUME_FILES = ("optimizer.pt", "scheduler.pt", "rng.pt")


def checkpoint_dirs(output: Path) -> list[Path]:
    """Completed checkpoints, oldest first."""
    root = output / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if p.is_dir() and (p / STATE_FILE).exists())


def latest_resumable(output: Path) -> Path | None:
    """The newest checkpoint that still holds optimizer state."""
    for path in reversed(checkpoint_dirs(output)):
        if all((path / name).exists() for name in _RESUME_FILES):
            return path
    return None


def adapter_state(model: Any) -> dict[str, torch.Tensor]:
    """The adapter's weights by parameter name, whole; collective when the model is sharded."""
    return {name: full_tensor(p) for name, p in model.named_parameters() if p.requires_grad}


def optimizer_state(model: Any, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state with whole tensors, keyed by parameter name instead of position.

    Collective when the model is sharded: every process must call it, in the same order.
    """
    names = _trainable_names(model)
    state = {
        names[param]: {key: full_tensor(value) for key, value in optimizer.state[param].items()}
        for group in optimizer.param_groups
        for param in group["params"]
        if param in optimizer.state
    }
    groups = [
        {
            **{k: v for k, v in group.items() if k != "params"},
            "params": [names[p] for p in group["params"]],
        }
        for group in optimizer.param_groups
    ]
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    output: Path,
    *,
    model: Any,
    adapter: dict[str, torch.Tensor],
    optimizer: dict[str, Any],
    scheduler: Any,
    state: dict[str, Any],
    keep_adapters: int,
    keep_optimizer: int,
) -> Path:
    """Write a checkpoint for ``state["step"]`` atomically, then apply retention.

    ``adapter`` and ``optimizer`` come from ``adapter_state`` and ``optimizer_state``; ``model``
    supplies the adapter's configuration.
    """
    root = output / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state['step']:06d}"
    partial = root / f".partial-{final.name}"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir()

    model.save_pretrained(partial, state_dict=adapter)
    torch.save(optimizer, partial / "optimizer.pt")
    torch.save(scheduler.state_dict(), partial / "scheduler.pt")
    torch.save(_rng_state(), partial / "rng.pt")
    (partial / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")
    _fsync_tree(partial)

    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    _fsync_dir(root)
    prune_checkpoints(output, keep_adapters=keep_adapters, keep_optimizer=keep_optimizer)
    return final


def load_adapter(path: Path, model: Any) -> None:
    """Put the checkpoint's adapter weights into ``model`` (before it is sharded)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(path / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(model, weights)
    if result.unexpected_keys:
        raise Conflict(
            f"checkpoint {path.name} does not match the model (unexpected {result.unexpected_keys[:3]})"
        )


def load_training_state(
    path: Path, *, model: Any, optimizer: torch.optim.Optimizer, scheduler: Any
) -> dict[str, Any]:
    """Restore optimizer, scheduler and RNG from ``path``; returns the saved trainer state."""
    _load_optimizer_state(
        model, optimizer, torch.load(path / "optimizer.pt", weights_only=True), path.name
    )
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    _set_rng_state(torch.load(path / "rng.pt", weights_only=True))
    return json.loads((path / STATE_FILE).read_text(encoding="utf-8"))


def _load_optimizer_state(
    model: Any, optimizer: torch.optim.Optimizer, saved: dict[str, Any], checkpoint: str
) -> None:
    """Load a by-name optimizer state, each tensor laid out (sharded or not) as its parameter is."""
    names = _trainable_names(model)
    current = [[names[p] for p in group["params"]] for group in optimizer.param_groups]
    saved_groups = saved.get("param_groups", [])
    if current != [group["params"] for group in saved_groups]:
        raise Conflict(f"checkpoint {checkpoint} holds optimizer state for other parameters")
    positional: dict[str, Any] = {"state": {}, "param_groups": []}
    index = 0
    for group, saved_group in zip(optimizer.param_groups, saved_groups, strict=True):
        ids = list(range(index, index + len(group["params"])))
        for i, param in zip(ids, group["params"], strict=True):
            values = saved["state"].get(names[param])
            if values is not None:
                positional["state"][i] = {k: like(v, param) for k, v in values.items()}
        positional["param_groups"].append({**saved_group, "params": ids})
        index += len(ids)
    optimizer.load_state_dict(positional)


def _trainable_names(model: Any) -> dict[torch.Tensor, str]:
    return {param: name for name, param in model.named_parameters() if param.requires_grad}


def prune_checkpoints(output: Path, *, keep_adapters: int, keep_optimizer: int) -> None:
    """Delete all but the newest ``keep_adapters`` checkpoints and older optimizer state."""
    dirs = checkpoint_dirs(output)
    for old in dirs[: max(0, len(dirs) - keep_adapters)]:
        shutil.rmtree(old)
    for path in dirs[: max(0, len(dirs) - keep_optimizer)]:
        for name in _RESUME_FILES:
            (path / name).unlink(missing_ok=True)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_tree(folder: Path) -> None:
    for file in folder.iterdir():
        if file.is_file():
            with file.open("rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    # Flushing the folder's entry makes the rename itself durable (POSIX); Windows has no such call.
    if os.name == "posix":
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
