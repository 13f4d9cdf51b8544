"""The start form's options: every recipe field with its type, default, choices and help text.

Derived from the settings dataclasses and their fields' metadata (``settings_fields.option``),
the one description the command line's flags come from too, so a field added to a recipe shows
up in the form without being listed anywhere else.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from app.recipes.data import DataOptions
from app.recipes.eval_settings import EvalSettings
from app.recipes.governor_settings import GovernorSettings
from app.recipes.settings_fields import Setting, cli_fields, group_of, without_none
from app.recipes.train_config import TrainConfig

# Fields of TrainConfig that a job sets itself (its data, its folders, no progress bar) or that
# are sections of their own here.
_JOB_OWNED = frozenset({"data", "output", "cache_dir", "progress", "data_options", "governor"})
_TYPE_NAMES: dict[Any, str] = {int: "integer", float: "number", str: "string", bool: "boolean"}


@dataclass(frozen=True, slots=True)
class FormOption:
    """One field as the form shows it; ``default`` ``None`` means unset (no limit, detected)."""

    name: str
    type: str
    """``integer``, ``number``, ``string``, ``boolean`` or a list of one (``integer[]``)."""
    default: Any
    choices: list[Any] | None
    help: str
    group: str | None


def form_options() -> dict[str, list[FormOption]]:
    """The options of each section of a training job: train, data, governor and eval."""
    return {
        "train": options_of(TrainConfig, skip=_JOB_OWNED),
        "data": options_of(DataOptions),
        "governor": options_of(GovernorSettings),
        "eval": options_of(EvalSettings),
    }


def options_of(cls: type, *, skip: frozenset[str] = frozenset()) -> list[FormOption]:
    """The fields of ``cls`` that carry a setting (those the command line shows), in order."""
    hints = typing.get_type_hints(cls)
    options = []
    for field in cli_fields(cls):
        if field.name in skip:
            continue
        described: Setting = field.metadata["setting"]
        kind = without_none(hints[field.name])
        default = _json(field.default) if field.default is not dataclasses.MISSING else None
        choices = described.choices or (typing.get_args(kind) if _is_literal(kind) else ())
        options.append(
            FormOption(
                name=field.name,
                type=_type_name(kind),
                default=default,
                choices=list(choices) or None,
                help=described.help.format(default=_shown(field.default)),
                group=group_of(field),
            )
        )
    return options


def _is_literal(kind: Any) -> bool:
    return typing.get_origin(kind) is typing.Literal


def _type_name(kind: Any) -> str:
    if _is_literal(kind):
        return _TYPE_NAMES.get(type(typing.get_args(kind)[0]), "string")
    if typing.get_origin(kind) is tuple:
        return _TYPE_NAMES.get(typing.get_args(kind)[0], "string") + "[]"
    return _TYPE_NAMES.get(kind, "string")


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _shown(default: Any) -> str:
    # As ``rag finetune train --help`` shows defaults.
    return f"{default:g}" if isinstance(default, float) else str(default)
