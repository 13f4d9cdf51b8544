"""Merging an adapter into its full-precision base: same logits, no PEFT needed to serve it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from app.cli import main
from app.finetune.prompts import render_review_prompt
from app.hf.chat_template import COMPACT_LLAMA3_TEMPLATE
from app.hf.peft_compat import peft_deprecations_silenced


@pytest.fixture(scope="module")
def adapter(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, rating_sentences_file: Path
) -> Path:
    output = tmp_path_factory.mktemp("merge") / "adapter"
    args = [
        "finetune", "train", "--model", str(tiny_model_dir), "--data", str(rating_sentences_file),
        "--output", str(output), "--max-steps", "4", "--micro-batch-size", "1", "--grad-accum", "1",
        "--lr", "1e-2", "--nice", "0", "--max-threads", "1", "--no-progress",
    ]  # fmt: skip
    assert main(args) == 0
    return output


def test_merged_model_gives_the_adapters_logits(
    tmp_path: Path, tiny_model_dir: Path, adapter: Path
) -> None:
    merged_dir = tmp_path / "merged"
    assert main(["finetune", "merge", "--adapter", str(adapter), "--output", str(merged_dir)]) == 0
    assert not (merged_dir / "adapter_config.json").exists()

    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    assert tokenizer.chat_template == COMPACT_LLAMA3_TEMPLATE
    ids = tokenizer(
        render_review_prompt(tokenizer, 8, 10), add_special_tokens=False, return_tensors="pt"
    )["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with peft_deprecations_silenced():
        with_adapter = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter
        ).eval()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    with torch.no_grad():
        expected = with_adapter(input_ids=ids).logits
        got = merged(input_ids=ids).logits
        untouched = base(input_ids=ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(untouched, expected, atol=1e-4), "the adapter must change the logits"


def test_merge_refuses_a_quantised_base(
    tmp_path: Path, tiny_model_dir: Path, adapter: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quantised = tmp_path / "base-4bit"
    shutil.copytree(tiny_model_dir, quantised)
    config = json.loads((quantised / "config.json").read_text(encoding="utf-8"))
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (quantised / "config.json").write_text(json.dumps(config), encoding="utf-8")
    args = ["finetune", "merge", "--model", str(quantised), "--adapter", str(adapter)]
    assert main([*args, "--output", str(tmp_path / "out")]) == 2
    assert "quantised checkpoint" in capsys.readouterr().err


def test_merge_needs_an_adapter_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["finetune", "merge", "--adapter", str(tmp_path), "--output", str(tmp_path / "out")]
    assert main(args) == 2
    assert "not an adapter folder" in capsys.readouterr().err
