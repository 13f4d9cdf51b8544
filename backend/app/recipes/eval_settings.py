"""The settings of ``rag finetune eval``: how much to generate and measure.

Torch-free and apart from ``app.finetune.evaluate``, so that the app can validate and show them
(the start form's options) without importing the evaluator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.core.errors import InvalidInput
from app.recipes.settings_fields import option

# The argument group these settings appear in (``rag finetune eval``, the start form).
_EVAL = "evaluation"


@dataclass(frozen=True)
class EvalSettings:
    """How much to generate and measure; defaults take minutes on a GPU."""

    per_rating: int = field(
        default=20,
        metadata=option(group=_EVAL, help="reviews generated per rating (default {default})"),
    )
    ratings: tuple[int, ...] | None = field(
        default=None,
        metadata=option(group=_EVAL, help="ratings to request (default: all seen)"),
    )
    """Ratings to request; ``None``: every rating that occurs in the training data."""
    max_new_tokens: int = field(
        default=64,
        metadata=option(group=_EVAL, help="longest generated review (default {default})"),
    )
    temperature: float = field(
        default=0.8, metadata=option(group=_EVAL, help="sampling temperature (default {default})")
    )
    top_p: float = field(
        default=0.95, metadata=option(group=_EVAL, help="nucleus sampling (default {default})")
    )
    batch_size: int = field(
        default=16,
        metadata=option(group=_EVAL, help="reviews generated at once (default {default})"),
    )
    ppl_samples: int = field(
        default=300,
        metadata=option(
            group=_EVAL, help="dev reviews the perplexity is measured on (default {default})"
        ),
    )
    classifier_samples: int = field(
        default=30_000,
        metadata=option(
            group=_EVAL,
            help="training reviews the judging classifier learns from (default {default})",
        ),
    )
    classifier_test_samples: int = 2_000
    seed: int = field(
        default=0, metadata=option(group=_EVAL, help="sampling seed (default {default})")
    )

    def __post_init__(self) -> None:
        positive = ("per_rating", "max_new_tokens", "batch_size", "ppl_samples")
        for name in (*positive, "classifier_samples", "classifier_test_samples"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"--{name.replace('_', '-')} must be at least 1")
        if not 0 < self.temperature <= 5 or not 0 < self.top_p <= 1:
            raise InvalidInput("--temperature must be in (0, 5] and --top-p in (0, 1]")
