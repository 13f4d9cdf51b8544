"""Memory planning: parameter counts, the estimate against hand arithmetic and against what the
trainer really allocates, the recommendation, and the ``rag finetune plan`` command."""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path

import pytest

from app.cli import main
from app.core.errors import InvalidInput, NotFound, Unsupported
from app.recipes.known_configs import MIDM_BASE, MIDM_MINI, find_known_shape
from app.recipes.plan import make_plan
from app.recipes.plan_estimate import (
    CUDA_CONTEXT_BYTES,
    FRAGMENTATION,
    GIB,
    PlanSettings,
    estimate_memory,
    layer_activation_bytes,
    lora_params,
    max_micro_batch,
)
from app.recipes.plan_shapes import resolve_shape, shape_from_config
from app.recipes.train_config import TrainConfig

# A model small enough to train on a CPU in a moment, shaped like Mi:dm (query width above the
# hidden size, grouped KV heads, tied embeddings).
SMALL = {
    "vocab_size": 2048,
    "hidden_size": 128,
    "intermediate_size": 344,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "tie_word_embeddings": True,
}


def _save_llama(path: Path, **overrides: object) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**{**SMALL, **overrides})).save_pretrained(path)
    return path


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Weights and config of a small random Llama (no tokenizer: the probe feeds random ids)."""
    return _save_llama(tmp_path_factory.mktemp("plan") / "small")


# --------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize(
    ("model_id", "published"),
    [
        # Midm Mini's count as its safetensors header reports it; the others from their model cards.
        ("K-intelligence/Midm-2.0-Mini-Instruct", 2_305_517_312),
        ("meta-llama/Meta-Llama-3-8B-Instruct", 8_030_261_248),
        ("Qwen/Qwen2.5-7B-Instruct", 7_615_616_512),
        ("mistralai/Mistral-7B-Instruct-v0.3", 7_248_023_552),
        ("meta-llama/Llama-2-13b-hf", 13_015_864_320),
    ],
)
def test_known_shapes_give_the_published_parameter_counts(model_id: str, published: int) -> None:
    shape = find_known_shape(model_id.upper())
    assert shape is not None
    assert shape.parameter_count() == published


def test_midm_base_and_exaone_round_to_their_published_sizes() -> None:
    assert round(MIDM_BASE.parameter_count() / 1e9, 1) == 11.5
    exaone = find_known_shape("LGAI-EXAONE/EXAONE-3.5-7.8B-Instruct")
    assert exaone is not None
    assert round(exaone.parameter_count() / 1e9, 1) == 7.8


@pytest.mark.parametrize(
    ("model_type", "overrides"),
    [
        ("llama", {"tie_word_embeddings": False}),
        ("qwen2", {}),  # q/k/v carry biases although the config does not say so
    ],
)
def test_parameter_count_equals_a_real_model(model_type: str, overrides: dict[str, object]) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(model_type, **{**SMALL, **overrides})
    model = AutoModelForCausalLM.from_config(config)
    shape = shape_from_config(config.to_dict(), name=model_type)
    assert shape.parameter_count() == sum(p.numel() for p in model.parameters())


def test_lora_parameters_equal_peft_trainable_count() -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from app.hf.peft_compat import peft_deprecations_silenced

    config = LlamaConfig(**SMALL)
    lora = LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM")
    with peft_deprecations_silenced():
        model = get_peft_model(LlamaForCausalLM(config), lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert lora_params(shape_from_config(config.to_dict(), name="small"), 8) == trainable


# --------------------------------------------------------------------------- the estimate


def test_midm_mini_estimate_matches_a_hand_calculation() -> None:
    """Every part for Mi:dm 2.0 Mini, 4 x 512 tokens, rank 16 on all linears, bf16 GPU."""
    settings = PlanSettings()
    params = 2_305_517_312
    embedding = 131_392 * 1792
    norms = (2 * 48 + 1) * 1792
    linears = params - embedding - norms  # 48 layers x 43,122,688
    # r x (in + out) per linear: q 1792->4096, k/v 1792->1024, o 4096->1792, gate/up 1792->4608,
    # down 4608->1792.
    adapter = 48 * 16 * ((1792 + 4096) * 2 + (1792 + 1024) * 2 + (1792 + 4608) * 3)
    assert adapter == 28_114_944
    tokens = 4 * 512
    # Per token and layer, LoRA with bf16 activations: norms (fp32 input copy + fp32 scale, x2);
    # q, k, v and the attention output in bf16 + fp32 log-sum-exp per head; gate, SiLU and up in
    # bf16; each adapter's fp32 dropped-out input and 1-byte mask, and its fp32 rank-16 output.
    per_layer = (
        2 * (4 * 1792 + 4)
        + 2 * (2 * 4096 + 2 * 1024)
        + 4 * 32
        + 2 * 3 * 4608
        + (4 + 1) * (5 * 1792 + 4096 + 4608)
        + 7 * 4 * 16
    )
    assert per_layer == 151_368
    logits = math.ceil(tokens * 0.6) * 12 * 131_392  # 60% reply tokens; 12 bytes per logit

    lora = estimate_memory(MIDM_MINI, "lora", settings, gradient_checkpointing=False).parts
    assert lora == {
        "weights": 2 * params,
        "trainable": 4 * adapter,
        "gradients": 4 * adapter,
        "optimizer": 8 * adapter,
        "activations": tokens * 48 * per_layer,
        "logits": logits,
    }

    qlora = estimate_memory(MIDM_MINI, "qlora", settings, gradient_checkpointing=True)
    assert qlora.parts["weights"] == linears // 2 + 4 * (embedding + norms)
    assert qlora.parts["quant_constants"] == int(linears * (1 / 64 + 4 / 16384))
    assert qlora.parts["dequantize"] == 2 * 1792 * 4608
    # QLoRA's fp32 residual stream: each checkpointed layer keeps an fp32 input.
    assert qlora.parts["activations"] == tokens * 48 * 4 * 1792
    # The logits outweigh one recomputed layer, so they set the transient peak.
    assert qlora.parts["logits"] > qlora.parts["recompute"]
    static = sum(v for k, v in qlora.parts.items() if k not in ("logits", "recompute"))
    assert qlora.allocated == static + logits
    assert qlora.required == int(qlora.allocated * (1 + FRAGMENTATION)) + CUDA_CONTEXT_BYTES


@pytest.mark.parametrize("method", ["lora", "qlora"])
@pytest.mark.parametrize("dropout", [0.0, 0.05])
def test_layer_activations_equal_what_autograd_saves(
    tmp_path: Path, method: str, dropout: float
) -> None:
    """Per layer and token, to the byte, on the trainer's own model set-up (fp32 on CPU)."""
    import torch

    from app.finetune.model import load_model
    from app.finetune.plan_probe import random_batch

    settings = PlanSettings(
        seq_len=32, micro_batch=2, lora_dropout=dropout, bf16=False, dropout_mask_bytes=4
    )

    def saved_bytes(layers: int) -> int:
        path = _save_llama(tmp_path / f"l{layers}", num_hidden_layers=layers)
        config = TrainConfig(
            data="",
            output="",
            model=str(path),
            method=method,
            lora_dropout=dropout,
            gradient_checkpointing=False,
        )
        model, _ = load_model(config, torch.device("cpu"))
        model.train()
        own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
        kept: dict[int, int] = {}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in own:
                kept[storage.data_ptr()] = storage.nbytes()
            return tensor

        batch = random_batch(SMALL["vocab_size"], settings, torch.Generator().manual_seed(0))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            model.get_decoder()(input_ids=batch.input_ids, position_ids=batch.position_ids)
        return sum(kept.values())

    tokens = settings.seq_len * settings.micro_batch
    measured = (saved_bytes(3) - saved_bytes(1)) // 2 // tokens
    shape, _ = resolve_shape(str(tmp_path / "l1"))
    assert measured == layer_activation_bytes(shape, method, settings)  # type: ignore[arg-type]


def test_full_fine_tuning_activations_equal_what_autograd_saves() -> None:
    """A bf16 model with every weight trained: per layer and token, to the byte."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from app.finetune.plan_probe import random_batch

    settings = PlanSettings(seq_len=32, micro_batch=2)

    def saved_bytes(layers: int) -> int:
        torch.manual_seed(0)
        config = LlamaConfig(**{**SMALL, "num_hidden_layers": layers})
        model = LlamaForCausalLM(config).to(torch.bfloat16).train()
        own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
        kept: dict[int, int] = {}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            if tensor.untyped_storage().data_ptr() not in own:
                kept[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        batch = random_batch(SMALL["vocab_size"], settings, torch.Generator().manual_seed(0))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            model.get_decoder()(input_ids=batch.input_ids, position_ids=batch.position_ids)
        return sum(kept.values())

    measured = (saved_bytes(3) - saved_bytes(1)) // 2 // (settings.seq_len * settings.micro_batch)
    shape = shape_from_config({"model_type": "llama", **SMALL}, name="small")
    assert measured == layer_activation_bytes(shape, "full", settings)


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_loaded_model_matches_the_weight_estimate(small_model: Path, method: str) -> None:
    import torch

    from app.finetune.model import load_model
    from app.finetune.plan_probe import tensor_bytes

    config = TrainConfig(data="", output="", model=str(small_model), method=method)
    model, _ = load_model(config, torch.device("cpu"))
    shape, _ = resolve_shape(str(small_model))
    parts = estimate_memory(
        shape,
        method,
        PlanSettings(bf16=False),
        gradient_checkpointing=True,  # type: ignore[arg-type]
    ).parts
    expected = parts["weights"] + parts.get("quant_constants", 0) + parts["trainable"]
    assert tensor_bytes(model) == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize(("method", "checkpointing"), [("lora", False), ("qlora", True)])
def test_probe_measures_what_the_estimate_predicts(
    small_model: Path, method: str, checkpointing: bool
) -> None:
    from app.finetune.plan_probe import probe

    result = probe(
        str(small_model),
        method,  # type: ignore[arg-type]
        PlanSettings(seq_len=128, micro_batch=4),
        gradient_checkpointing=checkpointing,
    )
    assert result.device == "cpu"
    assert result.measured_bytes > 0
    assert 0.9 < result.ratio < 1.1, result.to_dict()


def test_max_micro_batch_is_the_largest_that_fits() -> None:
    settings = PlanSettings()
    budget = 12 * GIB
    for method in ("lora", "qlora"):
        batch = max_micro_batch(MIDM_MINI, method, settings, budget, gradient_checkpointing=True)
        assert batch >= 1

        def required(b: int, method: str = method) -> int:
            return estimate_memory(
                MIDM_MINI, method, settings, gradient_checkpointing=True, micro_batch=b
            ).required

        assert required(batch) <= budget < required(batch + 1)
    assert max_micro_batch(MIDM_BASE, "lora", settings, 8 * GIB, gradient_checkpointing=True) == 0


@pytest.mark.parametrize(
    ("gpu_gib", "method", "checkpointing", "micro_batch"),
    [
        (4, "qlora", True, 1),  # RTX 3050 laptop: only the 4-bit base, one sequence at a time
        (8, "lora", True, 2),  # RTX 3050 desktop: two rows at a time, accumulated to four
        (12, "lora", True, 4),
        (24, "lora", False, 4),
        (80, "lora", False, 4),  # A100 / H100
    ],
)
def test_recommendations_for_midm_mini(
    gpu_gib: int, method: str, checkpointing: bool, micro_batch: int
) -> None:
    rec = make_plan("K-intelligence/Midm-2.0-Mini-Instruct", gpu_gib).recommendation
    assert rec is not None
    assert (rec.method, rec.gradient_checkpointing, rec.micro_batch) == (
        method,
        checkpointing,
        micro_batch,
    )
    assert rec.micro_batch * rec.gradient_accumulation >= PlanSettings().micro_batch


def test_accumulation_reaches_the_requested_batch_exactly() -> None:
    # Three sequences fit on 8 GiB, but 3 does not divide 4: two steps of two.
    rec = make_plan("mistralai/Mistral-7B-Instruct-v0.3", 8).recommendation
    assert rec is not None
    assert (rec.method, rec.micro_batch, rec.gradient_accumulation) == ("qlora", 2, 2)


def test_gpus_without_bf16_are_planned_in_fp32(capsys: pytest.CaptureFixture[str]) -> None:
    bf16 = estimate_memory(MIDM_MINI, "lora", PlanSettings(), gradient_checkpointing=True)
    fp32 = estimate_memory(MIDM_MINI, "lora", PlanSettings(bf16=False), gradient_checkpointing=True)
    assert fp32.parts["weights"] == 2 * bf16.parts["weights"]
    assert fp32.parts["activations"] == 2 * bf16.parts["activations"]
    assert main(["finetune", "plan", "--gpu-mem-gb", "16", "--fp32"]) == 0
    assert "GPU 16 GiB, fp32" in capsys.readouterr().out


def test_fsdp_splits_weights_and_training_state_per_gpu() -> None:
    one = estimate_memory(MIDM_BASE, "lora", PlanSettings(), gradient_checkpointing=True)
    two = estimate_memory(MIDM_BASE, "lora", PlanSettings(shards=2), gradient_checkpointing=True)
    for part in ("weights", "trainable", "gradients", "optimizer"):
        assert two.parts[part] == math.ceil(one.parts[part] / 2), part
    # Gathered whole: embeddings, output layer and final norm, plus two decoder layers.
    layer = MIDM_BASE.layer_linear_params() + 2 * MIDM_BASE.hidden_size
    root = MIDM_BASE.embedding_params() + MIDM_BASE.lm_head_params() + MIDM_BASE.hidden_size
    assert two.parts["gathered"] == 2 * (root + 2 * layer)
    assert two.parts["activations"] == one.parts["activations"]
    # QLoRA's 4-bit base is not split, so its estimate does not change.
    qlora = [
        estimate_memory(MIDM_BASE, "qlora", PlanSettings(shards=n), gradient_checkpointing=True)
        for n in (1, 4)
    ]
    assert qlora[0] == qlora[1]


def test_fsdp_lets_lora_train_midm_base_on_24_gib_cards(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["finetune", "plan", "--model", "K-intelligence/Midm-2.0-Base-Instruct"]
    one = make_plan("K-intelligence/Midm-2.0-Base-Instruct", 24).recommendation
    two = make_plan(
        "K-intelligence/Midm-2.0-Base-Instruct", 24, PlanSettings(shards=2)
    ).recommendation
    assert one is not None and one.method == "qlora"
    assert two is not None and (two.method, two.gradient_checkpointing) == ("lora", True)
    assert main([*args, "--gpu-mem-gb", "24", "--fsdp", "2"]) == 0
    out = capsys.readouterr().out
    assert "base split across 2 GPUs (FSDP), figures per GPU" in out
    assert "recommendation: LORA with gradient checkpointing" in out
    assert main([*args, "--gpu-mem-gb", "24", "--fsdp", "0"]) == 2
    assert "FSDP processes must be at least 1" in capsys.readouterr().err


def test_nothing_fits_a_two_gigabyte_gpu() -> None:
    plan = make_plan("K-intelligence/Midm-2.0-Mini-Instruct", 2)
    assert plan.recommendation is None


def test_plan_defaults_are_the_trainers() -> None:
    train, plan = TrainConfig(data="", output=""), PlanSettings()
    assert (plan.seq_len, plan.micro_batch, plan.lora_rank, plan.lora_dropout) == (
        train.max_seq_len,
        train.micro_batch_size,
        train.lora_r,
        train.lora_dropout,
    )
    assert train.target_modules is None  # every linear, as the plan assumes
    assert "label_fraction" in {f.name for f in fields(PlanSettings)}


def test_a_local_directory_is_read_from_its_config(small_model: Path) -> None:
    shape, source = resolve_shape(str(small_model))
    assert source.startswith("config.json")
    assert (shape.hidden_size, shape.q_dim, shape.kv_dim) == (128, 256, 64)
    assert shape.tie_word_embeddings


def test_unplannable_models_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="known-config table"):
        resolve_shape("nobody/no-such-model")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 768}))
    with pytest.raises(Unsupported, match="gpt2"):
        resolve_shape(str(tmp_path))
    with pytest.raises(InvalidInput):
        PlanSettings(micro_batch=0)
    with pytest.raises(InvalidInput):
        make_plan("K-intelligence/Midm-2.0-Mini-Instruct", 0)


# --------------------------------------------------------------------------- command line


def test_cli_prints_a_table_and_a_recommendation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["finetune", "plan", "--gpu-mem-gb", "8"]) == 0
    out = capsys.readouterr().out
    assert "Midm-2.0-Mini-Instruct" in out
    assert "2.31 B parameters" in out
    assert "recommendation: LORA with gradient checkpointing" in out


def test_cli_json_for_a_known_model(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["finetune", "plan", "--model", "meta-llama/Meta-Llama-3-8B-Instruct"]
    assert main([*args, "--gpu-mem-gb", "24", "--seq-len", "256", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["parameter_count"] == 8_030_261_248
    assert data["settings"]["seq_len"] == 256
    assert set(data["methods"]) == {"full", "lora", "qlora"}
    lora = data["methods"]["lora"]
    assert (
        lora["without_checkpointing"]["parts_gib"]["activations"]
        > (lora["with_checkpointing"]["parts_gib"]["activations"])
    )
    assert data["recommendation"]["method"] == "lora"


def test_cli_exits_1_when_nothing_fits(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["finetune", "plan", "--model", "K-intelligence/Midm-2.0-Base-Instruct"]
    assert main([*args, "--gpu-mem-gb", "8"]) == 1
    assert "nothing fits" in capsys.readouterr().out


def test_cli_reports_bad_input_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["finetune", "plan", "--model", "nobody/no-such-model", "--gpu-mem-gb", "8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no config for 'nobody/no-such-model'")
    assert "Traceback" not in err


def test_cli_probe_prints_the_measurement(
    small_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["finetune", "plan", "--model", str(small_model), "--gpu-mem-gb", "24"]
    assert main([*args, "--seq-len", "64", "--probe", "--probe-steps", "1", "--json"]) == 0
    probe = json.loads(capsys.readouterr().out)["probe"]
    assert probe["method"] == "lora"
    assert probe["steps"] == 1
    assert probe["measured_mib"] > 0
