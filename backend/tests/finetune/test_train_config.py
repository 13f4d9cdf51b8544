"""``TrainConfig`` written once: the command line's flags and a JSON body build the same config,
and bad values are refused with the field's name."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import InvalidInput
from app.finetune.cli import register, train_config_from_args
from app.recipes.data import DataOptions
from app.recipes.governor_settings import GovernorSettings
from app.recipes.plan import make_plan
from app.recipes.settings_fields import cli_fields, flag_of
from app.recipes.train_config import (
    ADAPTER_METHODS,
    METHODS,
    TrainConfig,
    train_config_from_dict,
)


def parse_train(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rag")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["finetune", "train", *argv])


def test_every_described_field_is_a_flag_of_rag_finetune_train(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse_train(["--help"])
    shown = capsys.readouterr().out
    for cls in (TrainConfig, DataOptions, GovernorSettings):
        for field in cli_fields(cls):
            assert f"--{flag_of(field)} " in shown, field.name
    assert all(flag in shown for flag in ("--max-review-chars", "--nice", "--max-gpu-temp"))


def test_the_command_line_and_a_json_body_build_the_same_config(tmp_path: Path) -> None:
    args = parse_train(
        [
            "--data",
            "reviews.tsv",
            "--output",
            str(tmp_path),
            "--method",
            "qlora",
            "--lr",
            "0.001",
            "--target-modules",
            "q_proj, v_proj",
            "--no-gradient-checkpointing",
            "--max-review-chars",
            "120",
            "--nice",
            "3",
        ]
    )
    from_cli = train_config_from_args(args)
    from_json = train_config_from_dict(
        {
            "data": "reviews.tsv",
            "output": str(tmp_path),
            "method": "qlora",
            "lr": 0.001,
            "target_modules": ["q_proj", "v_proj"],
            "gradient_checkpointing": False,
            "data_options": {"max_chars": 120},
            "governor": {"niceness": 3},
        }
    )
    assert from_cli == from_json
    assert from_json.data_options.max_chars == 120 and from_json.governor.niceness == 3
    # Flags not given keep the dataclass's defaults.
    assert from_json.micro_batch_size == TrainConfig(data="", output="").micro_batch_size


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"output": "run"}, "data is required"),
        ({"data": "d", "output": "run", "learning_rate": 0.1}, "unknown field learning_rate"),
        ({"data": "d", "output": "run", "lr": "fast"}, "lr must be a number"),
        ({"data": "d", "output": "run", "micro_batch_size": 2.5}, "micro_batch_size must be an"),
        ({"data": "d", "output": "run", "micro_batch_size": True}, "micro_batch_size must be an"),
        ({"data": "d", "output": "run", "micro_batch_size": 0}, "micro_batch_size must be at"),
        ({"data": "d", "output": "run", "method": "full"}, "method must be one of lora, qlora"),
        ({"data": "d", "output": "run", "packing": "tight"}, "packing must be one of"),
        ({"data": "d", "output": "run", "lora_dropout": 1.0}, "lora_dropout must be in"),
        ({"data": "d", "output": "run", "target_modules": "q_proj"}, "target_modules must be"),
        ({"data": "d", "output": "run", "model": None}, "model must not be null"),
        ({"data": "d", "output": "run", "data_options": {"rows": 1}}, "data_options.rows"),
        ({"data": "d", "output": "run", "data_options": []}, "data_options must be an object"),
        ({"data": "d", "output": "run", "governor": {"niceness": 40}}, "niceness must be between"),
        ({"data": "d", "output": "run", "governor": {"poll_s": 0}}, "poll_s must be positive"),
    ],
)
def test_a_bad_body_is_refused_naming_the_field(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        train_config_from_dict(body)


def test_the_planner_compares_full_fine_tuning_but_recommends_an_adapter() -> None:
    assert set(ADAPTER_METHODS) < set(METHODS)
    plan = make_plan("K-intelligence/Midm-2.0-Mini-Instruct", 80)
    assert set(plan.methods) == set(METHODS)
    assert plan.recommendation is not None and plan.recommendation.method in ADAPTER_METHODS
    TrainConfig(data="d", output="o", method=plan.recommendation.method)


def test_every_field_of_the_config_is_accepted_by_the_json_builder() -> None:
    defaults = TrainConfig(data="d", output="o")
    body: dict[str, Any] = {f.name: getattr(defaults, f.name) for f in fields(TrainConfig)}
    body["data_options"] = {
        f.name: getattr(defaults.data_options, f.name) for f in fields(DataOptions)
    }
    body["governor"] = {
        f.name: getattr(defaults.governor, f.name) for f in fields(GovernorSettings)
    }
    assert train_config_from_dict(body) == defaults
