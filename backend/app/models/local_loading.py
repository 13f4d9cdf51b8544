"""Loading the local model's parts: the base (quantised when asked), its tokenizer for batched
generation, and LoRA adapters read from disk, checked against the base and attached or detached.

What cannot be served fails here with a message that says what to fix: a missing path, an
adapter trained for another base or with matrices of other shapes, not enough memory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from app.core.config import LocalModelSettings
from app.core.errors import InvalidInput, ModelUnavailable
from app.hf.peft_compat import peft_deprecations_silenced
from app.hf.quantization import set_4bit_layout
from app.models.adapter_files import check_trained_on, read_adapter_config

_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
# A LoRA matrix in an adapter's state dict: the module it adapts, and which side it is.
_LORA_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?:embedding_)?(?P<side>[AB])(?:\.weight)?$"
)


@dataclass(frozen=True, slots=True)
class PreparedAdapter:
    """An adapter read from disk and checked against the base, ready to attach."""

    name: str
    path: Path
    config: Any
    weights: dict[str, torch.Tensor]


def quantization(settings: LocalModelSettings) -> str | None:
    """``"4bit"``, ``"8bit"`` or ``None``, as the settings ask."""
    if settings.load_in_4bit:
        return "4bit"
    if settings.load_in_8bit:
        return "8bit"
    return None


def load_tokenizer(model: str) -> Any:
    """The tokenizer of ``model``, set up for batched generation."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"Cannot load the tokenizer of LOCAL_MODEL={model!r}: {exc}. Set LOCAL_MODEL to a "
            "local model directory or a Hugging Face id that is downloaded or reachable."
        ) from exc
    # Left padding: in a batch every prompt must end where generation starts.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base(
    model_id: str, device: torch.device, dtype: torch.dtype, quantization: str | None
) -> Any:
    """The base model on ``device``, quantised by bitsandbytes when ``quantization`` says so."""
    kwargs: dict[str, Any] = {"dtype": dtype}
    if quantization:
        if device.type != "cuda":
            raise ModelUnavailable(
                f"LOCAL_LOAD_IN_{quantization.upper()} needs a CUDA GPU (bitsandbytes); "
                f"the device is {device}. Unset it to load the model unquantised."
            )
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=quantization == "4bit",
            load_in_8bit=quantization == "8bit",
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(model_id, **kwargs)
        if quantization == "4bit":
            set_4bit_layout(model, "inference")
        elif not quantization:
            model.to(device)
    except torch.OutOfMemoryError as exc:
        raise ModelUnavailable(
            f"Not enough memory on {device} to load {model_id}; try "
            "LOCAL_LOAD_IN_4BIT=true, a smaller LOCAL_MODEL or LOCAL_DEVICE=cpu."
        ) from exc
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"Cannot load LOCAL_MODEL={model_id!r}: {exc}") from exc
    return model


def prepare_adapter(
    name: str, path: Path, model: Any, base_model: str, *, wrapped: bool
) -> PreparedAdapter:
    """Read the adapter in ``path`` and check that it fits ``model`` (a base loaded from
    ``base_model``; ``wrapped``: a PEFT model holding other adapters), touching nothing."""
    from peft import PeftConfig
    from peft.utils import load_peft_weights

    check_trained_on(name, path, read_adapter_config(name, path), base_model)
    if not any((path / weights).is_file() for weights in _WEIGHT_FILES):
        raise InvalidInput(
            f"LoRA adapter {name!r}: {path} has no {_WEIGHT_FILES[0]}.",
            code="invalid_adapter",
            params={"name": name, "path": str(path)},
        )
    try:
        with peft_deprecations_silenced():
            config = PeftConfig.from_pretrained(str(path))
        weights = load_peft_weights(str(path), device="cpu")
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise InvalidInput(
            f"Cannot load LoRA adapter {name!r} from {path}: {first_line(exc)}",
            code="invalid_adapter",
            params={"name": name, "path": str(path)},
        ) from exc
    config.inference_mode = True
    _check_shapes(name, path, weights, model.get_base_model() if wrapped else model, base_model)
    return PreparedAdapter(name, path, config, weights)


def _check_shapes(
    name: str, path: Path, weights: Mapping[str, torch.Tensor], base: Any, base_model: str
) -> None:
    """Every LoRA matrix must adapt a module of the base with the sizes it was trained on."""
    modules = dict(base.named_modules())
    for key, tensor in weights.items():
        match = _LORA_KEY.match(key)
        if match is None:
            continue
        module_name, side = match["module"], match["side"]
        module = modules.get(module_name)
        if module is None:
            raise _misfit(name, path, base_model, f"the base has no module {module_name}")
        features = _features(module)
        if features is None:
            continue
        # LoRA A reads the module's input (r x in); B writes its output (out x r).
        dim, want = (1, features[0]) if side == "A" else (0, features[1])
        if tensor.dim() < 2 or tensor.shape[dim] != want:
            raise _misfit(
                name,
                path,
                base_model,
                f"{module_name} maps {features[0]} to {features[1]} features, but the "
                f"adapter's {key} has shape {tuple(tensor.shape)}",
            )


def attach_adapter(model: Any, prepared: PreparedAdapter, base_model: str, *, wrapped: bool) -> Any:
    """``model`` with the checked adapter added (wrapped by PEFT on the first one); on failure
    the adapter is taken off again and ``model`` is as it was."""
    from peft import PeftModel
    from peft.utils import set_peft_model_state_dict

    try:
        with peft_deprecations_silenced():
            if wrapped:
                model.add_adapter(prepared.name, prepared.config)
            else:
                model = PeftModel(model, prepared.config, adapter_name=prepared.name)
            result = set_peft_model_state_dict(model, prepared.weights, adapter_name=prepared.name)
        missing = [k for k in result.missing_keys if "lora_" in k and prepared.name in k]
        if missing:
            raise ValueError(f"the adapter has no weights for {missing[0]}")
    except torch.OutOfMemoryError as exc:
        _discard(model, prepared.name, wrapped=wrapped)
        raise ModelUnavailable(
            f"Not enough memory on {model.device} for LoRA adapter {prepared.name!r}."
        ) from exc
    except (RuntimeError, ValueError, KeyError) as exc:
        _discard(model, prepared.name, wrapped=wrapped)
        raise _misfit(prepared.name, prepared.path, base_model, first_line(exc)) from exc
    model.eval()
    return model


def _discard(model: Any, name: str, *, wrapped: bool) -> None:
    """Take a half-attached adapter off again."""
    if not hasattr(model, "peft_config") or name not in model.peft_config:
        return
    if wrapped:
        model.delete_adapter(name)
    else:
        model.unload()


def detach_adapter(model: Any, name: str) -> tuple[Any, bool]:
    """``model`` without adapter ``name``, and whether it still holds adapters (removing the
    last one unwraps the base)."""
    others = [n for n in model.peft_config if n != name]
    if not others:
        return model.unload(), False
    if name in model.active_adapters:
        # Deleting the active adapter would make PEFT pick another one and warn.
        model.set_adapter(others[0])
    model.delete_adapter(name)
    return model, True


def _features(module: Any) -> tuple[int, int] | None:
    """(input, output) sizes of a linear or embedding module (wrapped by LoRA or not)."""
    if isinstance(module, torch.nn.Embedding):
        return module.num_embeddings, module.embedding_dim
    sizes = getattr(module, "in_features", None), getattr(module, "out_features", None)
    if all(isinstance(size, int) for size in sizes):
        return sizes[0], sizes[1]
    return None


def _misfit(name: str, path: Path, base: str, detail: str) -> InvalidInput:
    return InvalidInput(
        f"LoRA adapter {name!r} at {path} does not fit {base}: {detail}",
        code="adapter_shape_mismatch",
        params={"name": name, "model_base": base},
    )


def first_line(exc: Exception) -> str:
    """The first line of an exception's message (its type when it has none)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
