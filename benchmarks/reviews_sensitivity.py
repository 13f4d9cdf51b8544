"""Does a model read the rating it is asked for? The likelihood of real reviews under their own
rating against the opposite one.

Band accuracy says whether generated reviews read right; this says why they may not: a model
whose replies do not depend on the prompt's rating gives a review the same likelihood whatever
rating it is asked for, and no decoding setting can then make its reviews fit their rating.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# Reviews at the ends of the scale, read once under the lowest and once under the highest rating.
REVIEWS_PER_END = 150
LOW, HIGH, SCALE = 1, 10, 10


def rating_sensitivity(base: Path, adapter: Path, dev_file: Path) -> dict[str, Any]:
    """Per variant: reply NLL (nats per token) of 1-2★ and 9-10★ dev reviews under a 1★ and a
    10★ prompt, and the gap: how many nats per token a review gains under its own end of the
    scale (0 when the rating is ignored)."""
    import torch
    from app.finetune.evaluate_lm import load_model, reply_perplexity
    from app.recipes.data import DataOptions, Review, load_reviews

    torch.set_num_threads(1)
    reviews, _ = load_reviews(dev_file, DataOptions())
    ends = {
        "negative": [r for r in reviews if r.rating <= 2][:REVIEWS_PER_END],
        "positive": [r for r in reviews if r.rating >= 9][:REVIEWS_PER_END],
    }
    loaded = load_model(str(base), adapter)
    result: dict[str, Any] = {"reviews_per_end": REVIEWS_PER_END}
    for variant in ("base", "adapter"):
        nll: dict[str, dict[int, float]] = {}
        with loaded.variant(variant):
            for end, group in ends.items():
                nll[end] = {
                    rating: math.log(
                        reply_perplexity(
                            loaded,
                            [Review(r.text, rating) for r in group],
                            SCALE,
                            batch_size=50,
                        )[0]
                    )
                    for rating in (LOW, HIGH)
                }
        gap = (
            nll["negative"][HIGH]
            - nll["negative"][LOW]
            + nll["positive"][LOW]
            - nll["positive"][HIGH]
        ) / 2
        result[variant] = {"nll": nll, "gap": gap}
    return result
