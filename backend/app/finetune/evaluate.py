"""``rag finetune eval``: does the adapter write reviews that fit the rating it was asked for?

For the base model and (when given) base + adapter, side by side:

* rating consistency: a fast classifier (character n-gram TF-IDF + logistic regression) is trained
  on the training reviews' sentiment bands and its own accuracy is measured on the dev reviews;
  then reviews are generated for each requested rating and the share the classifier puts in the
  requested band is reported, per band and overall;
* reply perplexity: how well each model predicts the real dev reviews after their rating prompt;
* distinct-1 / distinct-2 of the generations, and the share copied word for word from the
  training set.

A "real reviews" column gives the same measures for the dev reviews themselves: the ceiling the
classifier allows on reviews of the requested ratings, and how diverse (and how repetitive:
"최고의 영화" occurs many times) real reviews are. The result is JSON plus a short Markdown report.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.core.errors import InvalidInput
from app.core.logger import get_logger
from app.finetune.evaluate_metrics import (
    ClassifierScore,
    RatingClassifier,
    band_consistency,
    copy_rate,
    distinct_n,
    normalize,
    sample,
    sentiment_band,
)
from app.recipes.data import DataOptions, Review, load_reviews
from app.recipes.eval_settings import EvalSettings

log = get_logger("finetune.evaluate")


def run_eval(
    model: str,
    data: Path,
    train_data: Path,
    *,
    adapter: Path | None = None,
    settings: EvalSettings | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` (and ``model`` + ``adapter``) on the dev reviews in ``data``."""
    from app.finetune.evaluate_lm import generate_reviews, load_model, reply_perplexity

    settings = settings or EvalSettings()
    train, train_report = load_reviews(train_data, DataOptions())
    scale = train_report.rating_scale
    dev, _ = load_reviews(data, DataOptions(rating_scale=scale))
    ratings = _requested_ratings(settings.ratings, train_report.ratings, scale)

    classifier, score = _rating_classifier(train, dev, scale, settings)
    training_texts = {normalize(r.text) for r in train}

    requests = [rating for rating in ratings for _ in range(settings.per_rating)]
    requested_bands = [sentiment_band(r, scale) for r in requests]
    ppl_reviews = sample(dev, settings.ppl_samples, settings.seed + 1)
    real = sample(dev, len(requests), settings.seed + 2)
    results: dict[str, dict[str, Any]] = {
        "real": {
            "rating_consistency": real_band_consistency(classifier, dev, ratings, scale, settings),
            "distinct_1": distinct_n((r.text for r in real), 1),
            "distinct_2": distinct_n((r.text for r in real), 2),
            "copy_rate": copy_rate([r.text for r in real], training_texts),
        }
    }

    loaded = load_model(model, adapter)
    variants = ["base", "adapter"] if adapter is not None else ["base"]
    for name in variants:
        with loaded.variant(name):
            texts = generate_reviews(
                loaded,
                requests,
                scale,
                max_new_tokens=settings.max_new_tokens,
                temperature=settings.temperature,
                top_p=settings.top_p,
                batch_size=settings.batch_size,
                seed=settings.seed,
            )
            perplexity, ppl_tokens = reply_perplexity(
                loaded, ppl_reviews, scale, batch_size=settings.batch_size
            )
        predicted = classifier.predict(texts)
        results[name] = {
            "rating_consistency": band_consistency(requested_bands, predicted),
            "perplexity": round(perplexity, 3),
            "perplexity_tokens": ppl_tokens,
            "distinct_1": distinct_n(texts, 1),
            "distinct_2": distinct_n(texts, 2),
            "copy_rate": copy_rate(texts, training_texts),
            "empty_rate": round(sum(not t for t in texts) / len(texts), 4),
            "samples": [
                {"rating": rating, "text": text, "predicted_band": band}
                for rating, text, band in _spread(requests, texts, predicted)
            ],
        }
        log.info("%s: consistency %.3f", name, results[name]["rating_consistency"]["overall"])

    return {
        "model": model,
        "adapter": str(adapter) if adapter else None,
        "data": str(data),
        "train_data": str(train_data),
        "rating_scale": scale,
        "ratings": list(ratings),
        "settings": asdict(settings),
        "classifier": score.to_dict(),
        "results": results,
    }


def _rating_classifier(
    train: list[Review], dev: list[Review], scale: int, settings: EvalSettings
) -> tuple[RatingClassifier, ClassifierScore]:
    """The classifier and its score on dev reviews as they come."""
    fit_on = sample(train, settings.classifier_samples, settings.seed)
    test_on = sample(dev, settings.classifier_test_samples, settings.seed)
    classifier = RatingClassifier(seed=settings.seed).fit(
        [r.text for r in fit_on], [sentiment_band(r.rating, scale) for r in fit_on]
    )
    texts, bands = [r.text for r in test_on], [sentiment_band(r.rating, scale) for r in test_on]
    score = classifier.score(texts, bands, train_size=len(fit_on))
    log.info("rating classifier: accuracy %.3f on %d dev reviews", score.accuracy, score.test_size)
    return classifier, score


def real_band_consistency(
    classifier: RatingClassifier,
    dev: list[Review],
    ratings: tuple[int, ...],
    scale: int,
    settings: EvalSettings,
) -> dict[str, Any]:
    """How often the classifier puts real dev reviews in their own band, drawn with the same
    ratings in the same shares as the generation requests.

    Dev reviews as they come are mostly positive, where the classifier does best; generations are
    requested evenly over the ratings, so only reviews of that mix make a like-for-like ceiling.
    Every requested rating the dev data has gets as many reviews as the rarest of them (at most
    ``classifier_test_samples`` in all); without any of them, the dev reviews as they come."""
    # Each rating's draw is seeded by the rating, so one rating's reviews do not depend on the others'.
    groups = [
        (rating, found) for rating in ratings if (found := [r for r in dev if r.rating == rating])
    ] or [(0, dev)]
    each = min(
        min(len(found) for _, found in groups),
        max(1, settings.classifier_test_samples // len(ratings)),
    )
    drawn = [
        review for rating, found in groups for review in sample(found, each, settings.seed + rating)
    ]
    bands = [sentiment_band(r.rating, scale) for r in drawn]
    return band_consistency(bands, classifier.predict([r.text for r in drawn]))


def _requested_ratings(
    given: tuple[int, ...] | None, seen: dict[int, int], scale: int
) -> tuple[int, ...]:
    ratings = given or tuple(sorted(seen))
    outside = [r for r in ratings if not 1 <= r <= scale]
    if outside:
        raise InvalidInput(f"ratings {outside} are outside the 1-{scale} scale of the data")
    return tuple(ratings)


def _spread(
    requests: list[int], texts: list[str], predicted: list[str], per_rating: int = 2
) -> list[tuple[int, str, str]]:
    """A few samples of every requested rating, for the report."""
    taken: Counter[int] = Counter()
    chosen = []
    for rating, text, band in zip(requests, texts, predicted, strict=True):
        if taken[rating] < per_rating:
            taken[rating] += 1
            chosen.append((rating, text, band))
    return chosen


# --------------------------------------------------------------------------- report


def format_markdown(report: dict[str, Any]) -> str:
    """A short Markdown report: base and adapter side by side, real reviews as the reference."""
    results = report["results"]
    columns = [name for name in ("base", "adapter") if name in results] + ["real"]
    titles = {"base": "base", "adapter": "base + adapter", "real": "real reviews"}
    scale = report["rating_scale"]
    band_ranges = {
        10: {"negative": "1-4", "neutral": "5-7", "positive": "8-10"},
        5: {"negative": "1-2", "neutral": "3", "positive": "4-5"},
    }[scale]
    clf = report["classifier"]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    def row(label: str, values: list[str]) -> str:
        return f"| {label} | " + " | ".join(values) + " |"

    lines = [
        "# Adapter evaluation",
        "",
        f"- base model: `{report['model']}`",
        f"- adapter: `{report['adapter'] or '(none)'}`",
        f"- dev data: `{report['data']}`; training data: `{report['train_data']}` "
        f"(ratings 1-{scale}); generated {report['settings']['per_rating']} review(s) for each "
        f"requested rating: {', '.join(map(str, report['ratings']))}",
        f"- rating classifier (character n-gram TF-IDF + logistic regression, "
        f"{clf['train_size']:,} training reviews): accuracy {pct(clf['accuracy'])} on "
        f"{clf['test_size']:,} dev reviews (majority baseline {pct(clf['majority_baseline'])}, "
        f"balanced accuracy {pct(clf['balanced_accuracy'])} vs chance {pct(clf['chance'])}, "
        f"macro-F1 {clf['macro_f1']:.3f})",
        "",
        row("measure", [titles[c] for c in columns]),
        row("---", ["---:" for _ in columns]),
        row(
            "rating consistency",
            [pct(results[c]["rating_consistency"]["overall"]) for c in columns],
        ),
    ]
    for band, span in band_ranges.items():
        values = [results[c]["rating_consistency"]["by_band"].get(band) for c in columns]
        if any(v is not None for v in values):
            lines.append(row(f"… {band} ({span})", [pct(v) for v in values]))
    lines += [
        row(
            "reply perplexity (dev)",
            [
                f"{results[c]['perplexity']:.2f}" if "perplexity" in results[c] else "-"
                for c in columns
            ],
        ),
        row("distinct-1", [ratio(results[c]["distinct_1"]) for c in columns]),
        row("distinct-2", [ratio(results[c]["distinct_2"]) for c in columns]),
        row("copied from training set", [pct(results[c]["copy_rate"]) for c in columns]),
        row("empty generations", [pct(results[c].get("empty_rate")) for c in columns]),
        "",
        "Real reviews: consistency is the classifier's recall on dev reviews drawn evenly over "
        "the requested ratings, as the generations are (the ceiling it allows); copying is how "
        "often a dev review also occurs in the training set.",
    ]
    for name in columns[:-1]:
        lines += ["", f"## Samples: {titles[name]}", ""]
        lines += [
            f"- ★{s['rating']} ({s['predicted_band']}): {s['text'] or '(empty)'}"
            for s in results[name]["samples"]
        ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- command line


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``eval`` to the ``rag finetune`` subcommands."""
    parser = subparsers.add_parser(
        "eval",
        help="rating consistency, perplexity and diversity of base vs base + adapter",
        description="Generate reviews for requested ratings and measure them; base and adapter "
        "side by side.",
    )
    parser.add_argument(
        "--model", default=None, help="base model (default: the adapter's base, else Mi:dm Mini)"
    )
    parser.add_argument("--adapter", type=Path, default=None, help="adapter folder (optional)")
    parser.add_argument("--data", type=Path, required=True, help="dev reviews (any review format)")
    parser.add_argument(
        "--train",
        type=Path,
        default=None,
        help="training reviews for the classifier and the copy check (default: the adapter's run.json)",
    )
    defaults = EvalSettings()
    parser.add_argument("--per-rating", type=int, default=defaults.per_rating)
    parser.add_argument(
        "--ratings", default=None, help="comma-separated ratings to request (default: all seen)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument("--top-p", type=float, default=defaults.top_p)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--ppl-samples", type=int, default=defaults.ppl_samples)
    parser.add_argument("--classifier-samples", type=int, default=defaults.classifier_samples)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--out", type=Path, default=None, help="also write eval.json and eval.md here"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.set_defaults(func=run_eval_cli)


def run_eval_cli(args: argparse.Namespace) -> int:
    """``rag finetune eval``: print (and optionally save) the report."""
    from app.finetune.merge import adapter_base_model
    from app.recipes.train_config import DEFAULT_MODEL

    model = args.model or (adapter_base_model(args.adapter) if args.adapter else DEFAULT_MODEL)
    train_data = args.train or (_training_data_of(args.adapter) if args.adapter else None)
    if train_data is None:
        raise InvalidInput("--train is required: the training reviews the classifier learns from")
    settings = EvalSettings(
        per_rating=args.per_rating,
        ratings=_parse_ratings(args.ratings),
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        batch_size=args.batch_size,
        ppl_samples=args.ppl_samples,
        classifier_samples=args.classifier_samples,
        seed=args.seed,
    )
    report = run_eval(model, args.data, train_data, adapter=args.adapter, settings=settings)
    markdown = format_markdown(report)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "eval.json").write_text(
            json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        (args.out / "eval.md").write_text(markdown, encoding="utf-8")
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else markdown)
    return 0


def _parse_ratings(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        ratings = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise InvalidInput(f"--ratings must be comma-separated integers, got {text!r}") from exc
    if not ratings:
        raise InvalidInput("--ratings names no rating")
    return ratings


def _training_data_of(adapter: Path) -> Path | None:
    """The training data an adapter's ``run.json`` records, when it is still there."""
    run_file = adapter / "run.json"
    if not run_file.exists():
        return None
    recorded = json.loads(run_file.read_text(encoding="utf-8")).get("data")
    return Path(recorded) if recorded and Path(recorded).exists() else None
