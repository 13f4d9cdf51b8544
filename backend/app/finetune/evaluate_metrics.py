"""Text-only measures of generated reviews: sentiment bands, a rating classifier, diversity, copying.

Nothing here touches a language model, so these run (and are tested) without torch.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.core.errors import InvalidInput

Band = Literal["negative", "neutral", "positive"]
BANDS: tuple[Band, ...] = ("negative", "neutral", "positive")
_WHITESPACE = re.compile(r"\s+")


def sentiment_band(rating: int, scale: int) -> Band:
    """The band a rating belongs to: 1-4 / 5-7 / 8-10 out of 10, and 1-2 / 3 / 4-5 out of 5."""
    if scale == 10:
        limits = (4, 7)
    elif scale == 5:
        limits = (2, 3)
    else:
        raise InvalidInput(f"rating scale must be 5 or 10, got {scale}")
    if not 1 <= rating <= scale:
        raise InvalidInput(f"rating must be between 1 and {scale}, got {rating}")
    if rating <= limits[0]:
        return "negative"
    if rating <= limits[1]:
        return "neutral"
    return "positive"


@dataclass(frozen=True)
class ClassifierScore:
    """How well the rating classifier reads real reviews (held-out data)."""

    train_size: int
    test_size: int
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    majority_baseline: float
    """Accuracy of always answering the most frequent band: the bar accuracy must clear."""
    bands: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "train_size": self.train_size,
            "test_size": self.test_size,
            "accuracy": round(self.accuracy, 4),
            "balanced_accuracy": round(self.balanced_accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "majority_baseline": round(self.majority_baseline, 4),
            "chance": round(1 / len(self.bands), 4),
            "bands": list(self.bands),
        }


class RatingClassifier:
    """Character n-gram TF-IDF + logistic regression over sentiment bands.

    Character n-grams suit Korean, where one word carries many endings; class weights are balanced
    because real ratings are skewed (most NSMC reviews give 10 stars), and a judge that leans
    positive would flatter a model that only writes praise.
    """

    def __init__(self, *, max_features: int = 200_000, seed: int = 0) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self._vectorizer = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(1, 3),
            sublinear_tf=True,
            min_df=2,
            max_features=max_features,
        )
        self._model = LogisticRegression(
            max_iter=1000, C=2.0, class_weight="balanced", random_state=seed
        )
        self.bands: tuple[str, ...] = ()

    def fit(self, texts: Sequence[str], bands: Sequence[str]) -> RatingClassifier:
        """Train on labelled texts (at least two bands must occur)."""
        from threadpoolctl import threadpool_limits

        present = sorted(set(bands), key=BANDS.index)
        if len(present) < 2:
            raise InvalidInput("the classifier needs reviews from at least two sentiment bands")
        features = self._vectorizer.fit_transform(texts)
        # A small sparse problem: thread pools cost more than they give, and on a busy machine
        # their spinning threads made a one-second fit take tens of seconds.
        with threadpool_limits(1):
            self._model.fit(features, list(bands))
        self.bands = tuple(present)
        return self

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most likely band of each text."""
        from threadpoolctl import threadpool_limits

        if not texts:
            return []
        features = self._vectorizer.transform(texts)
        with threadpool_limits(1):
            return [str(band) for band in self._model.predict(features)]

    def score(
        self, texts: Sequence[str], bands: Sequence[str], *, train_size: int
    ) -> ClassifierScore:
        """Accuracy, balanced accuracy and macro-F1 on held-out labelled texts."""
        from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

        predicted = self.predict(texts)
        majority = Counter(bands).most_common(1)[0][1] / len(bands)
        return ClassifierScore(
            train_size=train_size,
            test_size=len(texts),
            accuracy=float(accuracy_score(bands, predicted)),
            balanced_accuracy=float(balanced_accuracy_score(bands, predicted)),
            macro_f1=float(f1_score(bands, predicted, average="macro")),
            majority_baseline=majority,
            bands=self.bands,
        )


def sample(items: Sequence[Any], limit: int | None, seed: int) -> list[Any]:
    """Up to ``limit`` items drawn without replacement (all of them when ``limit`` is None)."""
    if limit is None or len(items) <= limit:
        return list(items)
    return random.Random(seed).sample(list(items), limit)


def band_consistency(requested: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Share of generations the classifier puts in the requested band, overall and per band."""
    if len(requested) != len(predicted):
        raise ValueError("requested and predicted bands differ in length")
    by_band: dict[str, float] = {}
    counts: dict[str, int] = {}
    for band in BANDS:
        pairs = [(r, p) for r, p in zip(requested, predicted, strict=True) if r == band]
        if pairs:
            counts[band] = len(pairs)
            by_band[band] = round(sum(r == p for r, p in pairs) / len(pairs), 4)
    hits = sum(r == p for r, p in zip(requested, predicted, strict=True))
    return {
        "overall": round(hits / len(requested), 4) if requested else 0.0,
        "by_band": by_band,
        "counts": counts,
    }


def distinct_n(texts: Iterable[str], n: int) -> float | None:
    """Unique word n-grams over all n-grams in ``texts`` (words split on whitespace).

    ``None`` when the texts hold no n-gram at all (e.g. one-word replies and ``n`` = 2).
    """
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = text.split()
        grams += [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return round(len(set(grams)) / len(grams), 4) if grams else None


def normalize(text: str) -> str:
    """Whitespace collapsed, ends trimmed: how texts are compared for copying."""
    return _WHITESPACE.sub(" ", text).strip()


def copy_rate(generations: Sequence[str], training_texts: set[str]) -> float:
    """Share of non-empty generations that repeat a training review word for word."""
    produced = [normalize(text) for text in generations if text.strip()]
    if not produced:
        return 0.0
    return round(sum(text in training_texts for text in produced) / len(produced), 4)
