"""The settings of a training run, and how a resumed run gets back the settings it started with.

Kept apart from ``train.py`` so the command line can show defaults without importing torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from app.core.errors import Conflict, InvalidInput, NotFound
from app.finetune.data import DataOptions
from app.finetune.governor import GovernorSettings
from app.finetune.plan import DEFAULT_MODEL

RUN_FILE = "run.json"

# Batch layouts (see ``packing.py``): share one prompt copy per group, pack rows, or pad.
Packing = Literal["share", "pack", "none"]
PACKING_MODES: tuple[str, ...] = ("share", "pack", "none")

Method = Literal["lora", "qlora"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run; saved in ``run.json`` and restored by ``--resume``."""

    data: str
    output: str
    model: str = DEFAULT_MODEL
    method: Method = "lora"  # lora: bf16/fp32 frozen base; qlora: 4-bit NF4 base
    data_options: DataOptions = field(default_factory=DataOptions)
    max_steps: int | None = None  # optimizer steps; overrides epochs when set
    epochs: float = 1.0
    micro_batch_size: int = 4  # rows per forward pass (a row packs several reviews)
    grad_accum: int = 4  # micro-batches per optimizer step
    lr: float = 2e-4
    warmup_ratio: float = 0.03  # share of steps with linearly rising lr, then cosine decay
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_r: int = 16  # rank of the adapter matrices
    lora_alpha: int = 32  # adapter output is scaled by alpha / r
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None  # None: every linear projection
    max_seq_len: int = 512  # tokens per packed row; longer examples are dropped
    packing: Packing = "share"  # share: one prompt copy per group; pack: rows; none: padding
    gradient_checkpointing: bool = True  # recompute activations in backward: less memory
    save_every: int = 200
    keep_checkpoints: int = 3  # adapter snapshots kept
    keep_optimizer_states: int = 1  # optimizer states kept (they are large)
    log_every: int = 10
    seed: int = 0
    governor: GovernorSettings = field(default_factory=GovernorSettings)
    cache_dir: str | None = None  # tokenised data; default OUTPUT/cache
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("micro_batch_size", "grad_accum", "lora_r", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"--{name.replace('_', '-')} must be at least 1")
        if self.keep_checkpoints < 1 or self.keep_optimizer_states not in (1, 2):
            raise InvalidInput("--keep-checkpoints must be ≥ 1 and --keep-optimizer-states 1 or 2")
        if self.max_steps is not None and self.max_steps < 1:
            raise InvalidInput("--max-steps must be at least 1")
        if self.epochs <= 0 or self.lr <= 0 or not 0 <= self.lora_dropout < 1:
            raise InvalidInput("--epochs and --lr must be positive, --lora-dropout in [0, 1)")
        if self.packing not in PACKING_MODES:
            raise InvalidInput(f"--packing must be one of {', '.join(PACKING_MODES)}")
        if self.max_seq_len < 16:
            raise InvalidInput("--max-seq-len must be at least 16")


# Settings that may change when a run is resumed: they pace or report, they do not change results.
RESUME_MAY_CHANGE = frozenset(
    {"governor", "progress", "log_every", "save_every", "keep_checkpoints", "cache_dir"}
)


def resolve_config(
    output: Path,
    overrides: dict[str, Any],
    *,
    data_overrides: dict[str, Any] | None = None,
    governor_overrides: dict[str, Any] | None = None,
    resume: bool = False,
) -> TrainConfig:
    """The config of a new run from the given settings, or the saved one when resuming.

    On resume, only pacing and reporting settings may differ from the saved run; anything that
    changes the result (data, model, batch, seed, ...) must match it or be left out.
    """
    from app.finetune.checkpoint import latest_resumable

    data_overrides = data_overrides or {}
    governor_overrides = governor_overrides or {}
    run_file = output / RUN_FILE
    if not resume:
        if run_file.exists() and latest_resumable(output) is not None:
            raise Conflict(
                f"{output} already holds a run with checkpoints; pass --resume to continue it "
                "or choose another --output"
            )
        if "data" not in overrides:
            raise InvalidInput("--data is required (a review file or folder)")
        return TrainConfig(
            output=str(output),
            data_options=DataOptions(**data_overrides),
            governor=GovernorSettings(**governor_overrides),
            **overrides,
        )
    if not run_file.exists():
        raise NotFound(f"nothing to resume: {run_file} does not exist")
    saved = config_from_dict(json.loads(run_file.read_text(encoding="utf-8"))["config"])
    changed = [
        f"--{name.replace('_', '-')} (saved: {getattr(source, name)!r})"
        for source, given in ((saved, overrides), (saved.data_options, data_overrides))
        for name, value in given.items()
        if name not in RESUME_MAY_CHANGE and value != getattr(source, name)
    ]
    if changed:
        raise Conflict("cannot resume with different " + ", ".join(changed))
    return replace(
        saved,
        # The folder resumed from, even when the run was moved there after it started.
        output=str(output),
        governor=replace(saved.governor, **governor_overrides),
        **{k: v for k, v in overrides.items() if k in RESUME_MAY_CHANGE},
    )


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a ``TrainConfig`` from its ``run.json`` form."""
    values = dict(data)
    values["data_options"] = DataOptions(**values["data_options"])
    values["governor"] = GovernorSettings(**values["governor"])
    if values.get("target_modules") is not None:
        values["target_modules"] = tuple(values["target_modules"])
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in values.items() if k in known})
