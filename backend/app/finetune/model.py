"""The model a run trains: a frozen base with a fresh LoRA adapter, and the reply-only loss.

Training, the memory probe and evaluation use these same functions, so the probe measures the
model that is trained and evaluation scores replies with the loss that was minimised.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from app.core.errors import InvalidInput, NotFound
from app.finetune.examples import PreparedData
from app.finetune.packing import Batch, collate, epoch_order, pack_rows
from app.hf.device import training_dtype
from app.hf.peft_compat import peft_deprecations_silenced
from app.hf.quantization import set_4bit_layout
from app.hf.tokens import pad_token_id
from app.recipes.train_config import TrainConfig


def load_tokenizer(model_id: str) -> Any:
    """The tokenizer of ``model_id`` (a hub id or a local folder)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_id)
    except OSError as exc:
        raise NotFound(f"cannot load a tokenizer from {model_id!r}: {exc}") from exc


def load_model(
    config: TrainConfig, device: torch.device, *, sharded: bool = False
) -> tuple[Any, torch.dtype]:
    """The frozen base (full precision or 4-bit) with a fresh LoRA adapter on it, and the dtype
    it computes in.

    A model that will be sharded stays on the CPU: sharding moves each process's part to
    ``device``.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = training_dtype(device)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if config.method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(config.model, **kwargs)
    except OSError as exc:
        raise NotFound(f"cannot load model {config.model!r}: {exc}") from exc
    if config.method == "qlora":
        # Checkpointing is enabled below, the same way for both methods (non-reentrant, which
        # needs no input-grad hook).
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        # Before the loss check runs the model in eval mode: a 4-bit layer repacked for
        # inference there would have no backward.
        set_4bit_layout(model, "training")
    elif not sharded:
        model.to(device)
    if config.gradient_checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": False})
    model.config.use_cache = False
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules) if config.target_modules else "all-linear",
        task_type="CAUSAL_LM",
    )
    try:
        with peft_deprecations_silenced():
            return get_peft_model(model, lora), dtype
    except ValueError as exc:
        raise InvalidInput(f"cannot attach LoRA to {config.model}: {exc}") from exc


def token_loss_sum(model: Any, batch: Batch) -> torch.Tensor:
    """Sum of next-token cross-entropy over the reply tokens.

    Logits are computed only at the positions that predict a reply token: with a large
    vocabulary the output layer is a big share of the compute, and most positions are prompt.
    """
    hidden = model.get_decoder()(
        input_ids=batch.input_ids,
        attention_mask=attention_mask_for(model, batch.attention_mask),
        position_ids=batch.position_ids,
        use_cache=False,
    ).last_hidden_state
    logits = model.get_output_embeddings()(hidden[batch.loss_rows, batch.loss_cols])
    return F.cross_entropy(logits.float(), batch.loss_targets, reduction="sum")


class ReplyLoss(torch.nn.Module):
    """``token_loss_sum`` as a module: the one call the loop makes, and the root that FSDP shards
    (its forward is where the embeddings and output layer are gathered, which is why the model's
    own loss, for the check, is computed through it too)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch, *, model_loss: bool = False) -> torch.Tensor:
        """The loss summed over the batch's reply tokens: ``token_loss_sum``, or with
        ``model_loss`` the model's own loss on the same labels (its mean, times their count)."""
        if not model_loss:
            return token_loss_sum(self.model, batch)
        mean = self.model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            labels=batch.labels(),
            use_cache=False,
        ).loss
        return mean * batch.label_tokens


def attention_mask_for(model: Any, mask: torch.Tensor | None) -> torch.Tensor | None:
    """The batch's mask in the form the model's attention takes: SDPA reads a boolean 4-D mask
    as is; eager attention adds it, so it needs 0 / -inf."""
    if mask is None or mask.dim() != 4:
        return mask
    implementation = model.config._attn_implementation
    if implementation == "sdpa":
        return mask
    if implementation == "eager":
        dtype = model.get_input_embeddings().weight.dtype
        additive = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
        return additive.masked_fill(~mask, torch.finfo(dtype).min)
    raise InvalidInput(
        f"--packing share needs sdpa or eager attention, not {implementation}; "
        "use --packing pack (FlashAttention reads packed rows from the position ids)"
    )


def check_loss_matches_model(
    loss_module: ReplyLoss,
    config: TrainConfig,
    tokenizer: Any,
    data: PreparedData,
    device: torch.device,
) -> None:
    """Check once that the reply-only loss equals the model's own loss on real examples.

    ``token_loss_sum`` skips the model's head for unlabelled positions; a model that post-processes
    its logits (soft-capping, scaling) would silently train on a different loss.
    """
    examples = data.examples
    order = epoch_order(len(examples), config.seed, 0)[:8]
    rows = pack_rows(examples, order, config.max_seq_len, share=False)[:1]
    batch = collate(examples, rows, pad_token_id(tokenizer)).to(device)
    loss_module.eval()
    with torch.no_grad():
        ours = loss_module(batch).item() / batch.label_tokens
        theirs = loss_module(batch, model_loss=True).item() / batch.label_tokens
    loss_module.train()
    if not math.isclose(ours, theirs, rel_tol=2e-2, abs_tol=1e-3):
        raise InvalidInput(
            f"{config.model} computes its loss differently ({theirs:.4f}) from the "
            f"reply-only loss ({ours:.4f}); this trainer supports Llama-style causal LMs"
        )
