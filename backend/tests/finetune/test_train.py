"""Training end to end on the tiny model: learning, frozen base, saved adapter, run record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from app.cli import main
from app.finetune.prompts import render_review_prompt
from app.finetune.train import Run, save, setup, train
from app.hf.chat_template import COMPACT_LLAMA3_TEMPLATE
from app.hf.peft_compat import peft_deprecations_silenced
from app.recipes.governor_settings import GovernorSettings
from app.recipes.train_config import TrainConfig
from tests.finetune.conftest import RATING_SENTENCES

QUIET = GovernorSettings(niceness=0, max_threads=1)


def train_args(model: Path, data: Path, output: Path, *extra: str) -> list[str]:
    """``rag finetune train`` arguments for a small, quiet, single-thread run."""
    return [
        "finetune",
        "train",
        "--model",
        str(model),
        "--data",
        str(data),
        "--output",
        str(output),
        "--nice",
        "0",
        "--max-threads",
        "1",
        "--no-progress",
        "--log-every",
        "1",
        *extra,
    ]


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, rating_sentences_file: Path
) -> Run:
    """An adapter trained to answer each rating with its own sentence (kept in memory)."""
    config = TrainConfig(
        model=str(tiny_model_dir),
        data=str(rating_sentences_file),
        output=str(tmp_path_factory.mktemp("trained") / "adapter"),
        max_steps=80,
        micro_batch_size=5,  # sharing gives each prompt its own row: one step sees all five
        grad_accum=1,
        lr=1e-2,
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        max_seq_len=512,
        save_every=1000,
        log_every=1,
        governor=QUIET,
        progress=False,
    )
    run = setup(config)
    train(run)
    save(run)
    run.model.eval()
    return run


def load_adapter(base: Path, adapter: Path) -> PeftModel:
    with peft_deprecations_silenced():
        return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()


def test_loss_decreases(trained: Run) -> None:
    log = Path(trained.config.output, "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    losses = [json.loads(line)["loss"] for line in log]
    assert len(losses) == 80
    assert sum(losses[-5:]) / 5 < 0.3 * sum(losses[:5]) / 5


def test_only_lora_weights_change(trained: Run, tiny_model_dir: Path) -> None:
    original = load_file(str(tiny_model_dir / "model.safetensors"))
    now = {
        name.replace(".base_layer.", "."): tensor
        for name, tensor in trained.model.get_base_model().state_dict().items()
        if "lora_" not in name
    }
    assert set(original) <= set(now)
    for name, tensor in original.items():
        assert torch.equal(now[name], tensor), name
    lora = [n for n, p in trained.model.named_parameters() if p.requires_grad]
    assert lora and all("lora_" in n for n in lora)


def test_saved_adapter_gives_the_same_logits(trained: Run, tiny_model_dir: Path) -> None:
    loaded = load_adapter(tiny_model_dir, Path(trained.config.output))
    ids = trained.tokenizer(
        render_review_prompt(trained.tokenizer, 7, 10),
        add_special_tokens=False,
        return_tensors="pt",
    )["input_ids"]
    with torch.no_grad():
        expected = trained.model(input_ids=ids).logits
        got = loaded(input_ids=ids).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_generation_follows_the_rating(trained: Run, tiny_model_dir: Path) -> None:
    adapter = Path(trained.config.output)
    model = load_adapter(tiny_model_dir, adapter)
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    hits = 0
    for rating, sentence in RATING_SENTENCES.items():
        ids = tokenizer(
            render_review_prompt(tokenizer, rating, 10),
            add_special_tokens=False,
            return_tensors="pt",
        )["input_ids"]
        out = model.generate(input_ids=ids, max_new_tokens=20, do_sample=False)
        hits += (
            tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip() == sentence
        )
    assert hits >= 4


def test_run_records_itself(trained: Run, rating_sentences_file: Path) -> None:
    output = Path(trained.config.output)
    record = json.loads((output / "run.json").read_text(encoding="utf-8"))
    assert record["base_model"] == trained.config.model
    assert len(record["data_hash"]) == 64
    assert record["config"]["lr"] == 1e-2
    assert {"torch", "transformers", "peft"} <= set(record["versions"])
    assert record["steps"] == 80 and record["tokens"] > 0
    assert record["resume_command"].endswith("--resume")
    entry = json.loads((output / "train_log.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(entry) >= {"step", "loss", "lr", "tokens_per_s", "elapsed_s"}
    assert (output / "adapter_config.json").exists()
    assert (output / "adapter_model.safetensors").exists()
    # The adapter folder's tokenizer carries the short template it was trained with, not the
    # base's template that injects a date and a default system prompt.
    assert AutoTokenizer.from_pretrained(output).chat_template == COMPACT_LLAMA3_TEMPLATE


def test_qlora_trains_on_cpu(
    tmp_path: Path, tiny_model_dir: Path, rating_sentences_file: Path
) -> None:
    output = tmp_path / "qlora"
    args = train_args(tiny_model_dir, rating_sentences_file, output, "--method", "qlora")
    assert main([*args, "--max-steps", "2", "--micro-batch-size", "1", "--grad-accum", "1"]) == 0
    losses = [
        json.loads(line)["loss"]
        for line in (output / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(losses) == 2 and all(0 < loss < 20 for loss in losses)
    assert json.loads((output / "run.json").read_text(encoding="utf-8"))["method"] == "qlora"
    assert (output / "adapter_model.safetensors").exists()


def test_resume_and_restart_are_checked(
    tmp_path: Path,
    tiny_model_dir: Path,
    rating_sentences_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = tmp_path / "run"
    args = train_args(tiny_model_dir, rating_sentences_file, output)
    assert main([*args[:-2], "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err

    assert main([*args, "--max-steps", "2", "--save-every", "1", "--grad-accum", "1"]) == 0
    assert main([*args, "--max-steps", "2"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*args, "--max-steps", "2", "--lr", "0.1", "--resume"]) == 2
    assert "cannot resume with different --lr" in capsys.readouterr().err
