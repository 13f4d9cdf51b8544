"""The settings of a run as ``rag finetune train`` resolves them: a new run's from its flags, a
resumed run's from its ``run.json``, with only pacing and reporting settings allowed to change."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from app.core.errors import Conflict, InvalidInput, NotFound
from app.finetune.checkpoint import latest_resumable
from app.recipes.data import DataOptions
from app.recipes.governor_settings import GovernorSettings
from app.recipes.settings_fields import flag_of
from app.recipes.train_config import RUN_FILE, TrainConfig, config_from_dict

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
    flags = {f.name: flag_of(f) for cls in (TrainConfig, DataOptions) for f in fields(cls)}
    changed = [
        f"--{flags[name]} (saved: {getattr(source, name)!r})"
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
