"""The settings of a training run, and how a resumed run gets back the settings it started with.

Kept apart from ``train.py`` so the command line can show defaults without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from app.core.errors import InvalidInput
from app.recipes.data import DataOptions
from app.recipes.governor_settings import GovernorSettings
from app.recipes.settings_fields import from_mapping, option

RUN_FILE = "run.json"
DEFAULT_MODEL = "K-intelligence/Midm-2.0-Mini-Instruct"

# What is trained: a LoRA adapter on a frozen bf16/fp32 base, or on a 4-bit NF4 base (QLoRA).
# The planner also estimates full fine-tuning (every weight) for comparison; the trainer does not.
AdapterMethod = Literal["lora", "qlora"]
Method = Literal["full", AdapterMethod]
ADAPTER_METHODS: tuple[AdapterMethod, ...] = get_args(AdapterMethod)
METHODS: tuple[Method, ...] = get_args(Method)

# Batch layouts (see ``packing.py``): share one prompt copy per group, pack rows, or pad.
Packing = Literal["share", "pack", "none"]
PACKING_MODES: tuple[Packing, ...] = get_args(Packing)


# Argument groups of ``rag finetune train --help`` (the data group is shared with ``DataOptions``).
_DATA = "data"
_TRAINING = "training"
_SAVING = "checkpoints and logs"


def _module_names(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that defines a run; saved in ``run.json`` and restored by ``--resume``.

    The command line's flags are derived from these fields (``settings_fields.py``), and
    ``train_config_from_dict`` builds one from a JSON body with the same field names.
    """

    model: str = field(
        default=DEFAULT_MODEL,
        metadata=option(help=f"hub id or local folder (default {DEFAULT_MODEL})"),
    )
    data: str = field(metadata=option(help="review file or folder (see --data-format)"))
    method: AdapterMethod = field(
        default="lora", metadata=option(help="lora (default) or qlora (4-bit)")
    )
    output: str
    data_options: DataOptions = field(default_factory=DataOptions)
    cache_dir: str | None = field(
        default=None,
        metadata=option(group=_DATA, help="tokenised data cache (default OUTPUT/cache)"),
    )
    max_steps: int | None = field(
        default=None, metadata=option(group=_TRAINING, help="optimizer steps (overrides --epochs)")
    )
    epochs: float = field(
        default=1.0,
        metadata=option(group=_TRAINING, help="passes over the data (default {default})"),
    )
    micro_batch_size: int = field(
        default=4,
        metadata=option(group=_TRAINING, help="rows per forward pass (default {default})"),
    )
    grad_accum: int = field(
        default=4,
        metadata=option(group=_TRAINING, help="micro-batches per step (default {default})"),
    )
    lr: float = field(
        default=2e-4,
        metadata=option(group=_TRAINING, help="peak learning rate (default {default})"),
    )
    warmup_ratio: float = field(
        default=0.03,
        metadata=option(group=_TRAINING, help="share of warm-up steps (default {default})"),
    )  # linearly rising lr over this share of steps, then cosine decay
    weight_decay: float = field(
        default=0.0, metadata=option(group=_TRAINING, help="AdamW weight decay (default {default})")
    )
    max_grad_norm: float = field(
        default=1.0, metadata=option(group=_TRAINING, help="gradient clipping (default {default})")
    )
    lora_r: int = field(
        default=16, metadata=option(group=_TRAINING, help="adapter rank (default {default})")
    )
    lora_alpha: int = field(
        default=32,
        metadata=option(group=_TRAINING, help="adapter scale numerator (default {default})"),
    )  # adapter output is scaled by alpha / r
    lora_dropout: float = field(
        default=0.05,
        metadata=option(group=_TRAINING, help="dropout on adapter input (default {default})"),
    )
    target_modules: tuple[str, ...] | None = field(
        default=None,
        metadata=option(
            group=_TRAINING,
            parse=_module_names,
            help="comma-separated module names (default: all linear projections)",
        ),
    )
    max_seq_len: int = field(
        default=512,
        metadata=option(group=_TRAINING, help="tokens per packed row (default {default})"),
    )  # longer examples are dropped
    packing: Packing = field(
        default="share",
        metadata=option(
            group=_TRAINING,
            help="share: reviews with the same prompt share one copy of it; pack: reviews side by "
            "side; none: padded batches (default {default})",
        ),
    )
    gradient_checkpointing: bool = field(
        default=True,
        metadata=option(group=_TRAINING, help="recompute activations to save memory (default on)"),
    )
    seed: int = field(
        default=0,
        metadata=option(
            group=_TRAINING, help="data order, adapter init, dropout (default {default})"
        ),
    )
    save_every: int = field(
        default=200,
        metadata=option(group=_SAVING, help="checkpoint every N steps (default {default})"),
    )
    keep_checkpoints: int = field(
        default=3, metadata=option(group=_SAVING, help="adapter snapshots kept (default {default})")
    )
    keep_optimizer_states: int = field(
        default=1,
        metadata=option(
            group=_SAVING, choices=(1, 2), help="optimizer states kept (default {default})"
        ),
    )  # they are large
    log_every: int = field(
        default=10, metadata=option(group=_SAVING, help="log every N steps (default {default})")
    )
    progress: bool = field(
        default=True, metadata=option(group=_SAVING, help="show a progress bar (default on)")
    )
    governor: GovernorSettings = field(default_factory=GovernorSettings)

    def __post_init__(self) -> None:
        for name in ("micro_batch_size", "grad_accum", "lora_r", "save_every", "log_every"):
            _at_least(name, getattr(self, name), 1)
        _at_least("keep_checkpoints", self.keep_checkpoints, 1)
        if self.max_steps is not None:
            _at_least("max_steps", self.max_steps, 1)
        _at_least("max_seq_len", self.max_seq_len, 16)
        if self.keep_optimizer_states not in (1, 2):
            raise InvalidInput(
                f"keep_optimizer_states must be 1 or 2, got {self.keep_optimizer_states}"
            )
        for name in ("epochs", "lr"):
            if not getattr(self, name) > 0:
                raise InvalidInput(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.warmup_ratio <= 1:
            raise InvalidInput(f"warmup_ratio must be in [0, 1], got {self.warmup_ratio}")
        if self.weight_decay < 0 or not self.max_grad_norm > 0:
            raise InvalidInput(
                f"weight_decay must be at least 0 (got {self.weight_decay}) and max_grad_norm "
                f"positive (got {self.max_grad_norm})"
            )
        if not 0 <= self.lora_dropout < 1:
            raise InvalidInput(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.method not in ADAPTER_METHODS:
            raise InvalidInput(f"method must be one of {', '.join(ADAPTER_METHODS)}")
        if self.packing not in PACKING_MODES:
            raise InvalidInput(f"packing must be one of {', '.join(PACKING_MODES)}")


def _at_least(name: str, value: int, least: int) -> None:
    if value < least:
        raise InvalidInput(f"{name} must be at least {least}, got {value}")


def train_config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """A validated ``TrainConfig`` from plain data with its field names (a JSON body): nested
    ``data_options`` and ``governor`` objects, lists for tuples. Unknown fields, missing ones,
    wrong types and out-of-range values are ``InvalidInput`` naming the field."""
    config: TrainConfig = from_mapping(TrainConfig, values)
    return config


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a ``TrainConfig`` from its ``run.json`` form."""
    values = dict(data)
    values["data_options"] = DataOptions(**values["data_options"])
    values["governor"] = GovernorSettings(**values["governor"])
    if values.get("target_modules") is not None:
        values["target_modules"] = tuple(values["target_modules"])
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in values.items() if k in known})
