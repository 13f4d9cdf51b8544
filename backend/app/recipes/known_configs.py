"""Shapes of a few models worth planning for, so ``rag finetune plan`` works without the hub.

Values are copied from each model's ``config.json``; the parameter count each shape implies is
checked against the published size in ``tests/finetune/test_plan.py``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelShape:
    """What memory planning needs from a Llama-family decoder's config."""

    name: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    tie_word_embeddings: bool
    attention_bias: bool = False

    @property
    def q_dim(self) -> int:
        """Width of the query projection (heads x head size; not always the hidden size)."""
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of the key and of the value projection (grouped-query attention)."""
        return self.num_kv_heads * self.head_dim

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """``(in_features, out_features)`` of each linear layer in one decoder layer."""
        h, i = self.hidden_size, self.intermediate_size
        return {
            "q_proj": (h, self.q_dim),
            "k_proj": (h, self.kv_dim),
            "v_proj": (h, self.kv_dim),
            "o_proj": (self.q_dim, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    def layer_linear_params(self) -> int:
        """Weights (and q/k/v biases where the model has them) of the linears of one layer."""
        weights = sum(a * b for a, b in self.linear_shapes().values())
        biases = self.q_dim + 2 * self.kv_dim if self.attention_bias else 0
        return weights + biases

    def embedding_params(self) -> int:
        """Input embedding table."""
        return self.vocab_size * self.hidden_size

    def lm_head_params(self) -> int:
        """Output projection; zero when it shares the embedding table."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    def norm_params(self) -> int:
        """RMSNorm scales: two per layer and the final one."""
        return (2 * self.num_layers + 1) * self.hidden_size

    def parameter_count(self) -> int:
        """Every parameter of the model."""
        return (
            self.embedding_params()
            + self.lm_head_params()
            + self.num_layers * self.layer_linear_params()
            + self.norm_params()
        )


def _llama(
    name: str,
    *,
    vocab: int,
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    intermediate: int,
    tied: bool,
    head_dim: int | None = None,
    attention_bias: bool = False,
) -> ModelShape:
    return ModelShape(
        name=name,
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim or hidden // heads,
        intermediate_size=intermediate,
        tie_word_embeddings=tied,
        attention_bias=attention_bias,
    )


# Mi:dm 2.0 Mini keeps Base's 32 x 128 attention width on a narrower 1792 residual stream,
# so its query projection is wider than its hidden size.
MIDM_MINI = _llama(
    "K-intelligence/Midm-2.0-Mini-Instruct",
    vocab=131392,
    hidden=1792,
    layers=48,
    heads=32,
    kv_heads=8,
    head_dim=128,
    intermediate=4608,
    tied=True,
)
MIDM_BASE = _llama(
    "K-intelligence/Midm-2.0-Base-Instruct",
    vocab=131392,
    hidden=4096,
    layers=48,
    heads=32,
    kv_heads=8,
    intermediate=14336,
    tied=False,
)
LLAMA3_8B = _llama(
    "meta-llama/Meta-Llama-3-8B-Instruct",
    vocab=128256,
    hidden=4096,
    layers=32,
    heads=32,
    kv_heads=8,
    intermediate=14336,
    tied=False,
)
QWEN25_7B = _llama(
    "Qwen/Qwen2.5-7B-Instruct",
    vocab=152064,
    hidden=3584,
    layers=28,
    heads=28,
    kv_heads=4,
    intermediate=18944,
    tied=False,
    attention_bias=True,
)
EXAONE35_8B = _llama(
    "LGAI-EXAONE/EXAONE-3.5-7.8B-Instruct",
    vocab=102400,
    hidden=4096,
    layers=32,
    heads=32,
    kv_heads=8,
    intermediate=14336,
    tied=False,
)
MISTRAL_7B = _llama(
    "mistralai/Mistral-7B-Instruct-v0.3",
    vocab=32768,
    hidden=4096,
    layers=32,
    heads=32,
    kv_heads=8,
    intermediate=14336,
    tied=False,
)
LLAMA2_13B = _llama(
    "meta-llama/Llama-2-13b-hf",
    vocab=32000,
    hidden=5120,
    layers=40,
    heads=40,
    kv_heads=40,
    intermediate=13824,
    tied=False,
)

KNOWN_SHAPES: tuple[ModelShape, ...] = (
    MIDM_MINI,
    MIDM_BASE,
    LLAMA3_8B,
    QWEN25_7B,
    EXAONE35_8B,
    MISTRAL_7B,
    LLAMA2_13B,
)

# Base and instruction-tuned releases share one architecture.
_ALIASES: dict[str, ModelShape] = {
    "meta-llama/meta-llama-3-8b": LLAMA3_8B,
    "meta-llama/llama-3.1-8b": LLAMA3_8B,
    "meta-llama/llama-3.1-8b-instruct": LLAMA3_8B,
    "qwen/qwen2.5-7b": QWEN25_7B,
    "mistralai/mistral-7b-v0.3": MISTRAL_7B,
    "meta-llama/llama-2-13b-chat-hf": LLAMA2_13B,
}


def find_known_shape(model_id: str) -> ModelShape | None:
    """The stored shape for a hub id (any letter case), or None."""
    key = model_id.strip().lower()
    for shape in KNOWN_SHAPES:
        if shape.name.lower() == key:
            return shape
    return _ALIASES.get(key)
