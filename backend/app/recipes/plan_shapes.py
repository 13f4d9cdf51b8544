"""Where the planner reads a model's shape: a local ``config.json``, the known-config table, or
the Hugging Face cache (nothing is downloaded)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.core.errors import InvalidInput, NotFound, Unsupported
from app.recipes.known_configs import KNOWN_SHAPES, ModelShape, find_known_shape

# attention with grouped KV heads, a gated MLP of three matrices).
_DECODER_TYPES = {"llama", "mistral", "qwen2", "exaone"}
# Models whose q/k/v projections carry a bias although their config does not say so.
_QKV_BIAS_TYPES = {"qwen2"}


def resolve_shape(model: str) -> tuple[ModelShape, str]:
    """The shape of ``model`` (a local directory, a known hub id or a cached one) and where it came from."""
    path = Path(model).expanduser()
    if path.exists():
        config = path / "config.json" if path.is_dir() else path
        if not config.is_file():
            raise NotFound(f"{path} has no config.json")
        return shape_from_config(_read_json(config), name=model), f"config.json in {path}"
    known = find_known_shape(model)
    if known is not None:
        return known, "known-config table"
    cached = _cached_config(model)
    if cached is not None:
        return shape_from_config(_read_json(cached), name=model), f"Hugging Face cache ({cached})"
    names = ", ".join(shape.name for shape in KNOWN_SHAPES)
    raise NotFound(
        f"no config for {model!r}: not a local directory, not in the known-config table ({names}) "
        "and not in the Hugging Face cache; download the model or pass its directory"
    )


def shape_from_config(config: dict[str, Any], *, name: str) -> ModelShape:
    """Read a Llama-family ``config.json`` into a shape (raises Unsupported for other families)."""
    model_type = str(config.get("model_type", ""))
    if model_type not in _DECODER_TYPES:
        raise Unsupported(
            f"planning reads Llama-style decoders ({', '.join(sorted(_DECODER_TYPES))}); "
            f"{name} is {model_type or 'of unknown type'}"
        )
    try:
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        layers = int(config.get("num_hidden_layers") or config["num_layers"])
        shape = ModelShape(
            name=name,
            vocab_size=int(config["vocab_size"]),
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            intermediate_size=int(config["intermediate_size"]),
            # Untied is the larger case, so a config that does not say is planned conservatively.
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            attention_bias=bool(config.get("attention_bias", model_type in _QKV_BIAS_TYPES)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"config of {name} lacks a usable field: {exc}") from exc
    return shape


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} is not a JSON object")
    # Multimodal checkpoints nest the language model's config.
    text = data.get("text_config")
    return text if isinstance(text, dict) and "model_type" in text else data


def _cached_config(model_id: str) -> Path | None:
    if model_id.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(model_id, "config.json")
    return Path(found) if isinstance(found, str) else None
