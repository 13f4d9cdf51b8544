"""Evaluation: sentiment bands and text measures, the rating classifier on real NSMC reviews, and
``rag finetune eval`` end to end on the tiny model with an adapter trained for a few steps."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from app.cli import main
from app.core.errors import InvalidInput
from app.finetune.evaluate import format_markdown, real_band_consistency, run_eval
from app.finetune.evaluate_metrics import (
    RatingClassifier,
    band_consistency,
    copy_rate,
    distinct_n,
    sample,
    sentiment_band,
)
from app.recipes.data import DataOptions, Review, load_reviews
from app.recipes.eval_settings import EvalSettings
from tests.conftest import require_shared
from tests.utils.tiny_lm import SHARED_DATA

NSMC_DEV = SHARED_DATA / "nsmc" / "dev.tsv.gz"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def nsmc_dev() -> Path:
    """The shared NSMC dev TSV."""
    return require_shared(NSMC_DEV)


@pytest.fixture(scope="module")
def train_slice(tmp_path_factory: pytest.TempPathFactory, nsmc_train: Path) -> Path:
    """The first 2,000 NSMC training reviews as a plain TSV (fast to train and index)."""
    path = tmp_path_factory.mktemp("eval-data") / "train.tsv"
    with gzip.open(nsmc_train, "rt", encoding="utf-8") as source:
        lines = [line for _, line in zip(range(2001), source, strict=False)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def adapter(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, train_slice: Path
) -> Path:
    """A LoRA adapter trained by ``rag finetune train``'s recipe for a few steps on ``train_slice``."""
    from app.finetune.train import run_training
    from app.recipes.governor_settings import GovernorSettings
    from app.recipes.train_config import TrainConfig

    config = TrainConfig(
        data=str(train_slice),
        output=str(tmp_path_factory.mktemp("eval-adapter") / "adapter"),
        model=str(tiny_model_dir),
        max_steps=12,
        micro_batch_size=4,
        grad_accum=1,
        lr=3e-3,
        max_seq_len=256,
        save_every=1000,
        progress=False,
        governor=GovernorSettings(niceness=0),
    )
    return run_training(config)


# --------------------------------------------------------------------------- text measures


@pytest.mark.parametrize(
    ("rating", "scale", "band"),
    [
        (1, 10, "negative"),
        (4, 10, "negative"),
        (5, 10, "neutral"),
        (7, 10, "neutral"),
        (8, 10, "positive"),
        (10, 10, "positive"),
        (2, 5, "negative"),
        (3, 5, "neutral"),
        (4, 5, "positive"),
    ],
)
def test_sentiment_bands(rating: int, scale: int, band: str) -> None:
    assert sentiment_band(rating, scale) == band


def test_sentiment_band_rejects_ratings_off_the_scale() -> None:
    with pytest.raises(InvalidInput):
        sentiment_band(11, 10)
    with pytest.raises(InvalidInput):
        sentiment_band(3, 7)


def test_distinct_n_counts_unique_word_ngrams() -> None:
    texts = ["정말 재밌는 영화", "정말 재밌는 드라마", ""]
    # words: 정말, 재밌는, 영화, 정말, 재밌는, 드라마 -> 4 unique of 6
    assert distinct_n(texts, 1) == round(4 / 6, 4)
    # bigrams: (정말 재밌는) twice, (재밌는 영화), (재밌는 드라마) -> 3 unique of 4
    assert distinct_n(texts, 2) == 0.75
    assert distinct_n(["한 단어"], 3) is None


def test_copy_rate_ignores_spacing_and_empty_replies() -> None:
    training = {"최고의 영화", "돈 아깝다"}
    assert copy_rate(["최고의  영화 ", "새로운 리뷰", "", "돈 아깝다"], training) == round(2 / 3, 4)
    assert copy_rate(["", " "], training) == 0.0


def test_band_consistency_per_band_and_overall() -> None:
    requested = ["negative", "negative", "positive", "positive", "positive"]
    predicted = ["negative", "positive", "positive", "positive", "neutral"]
    result = band_consistency(requested, predicted)
    assert result["overall"] == 0.6
    assert result["by_band"] == {"negative": 0.5, "positive": round(2 / 3, 4)}
    assert result["counts"] == {"negative": 2, "positive": 3}


def test_rating_classifier_beats_chance_on_nsmc(nsmc_train: Path, nsmc_dev: Path) -> None:
    """Trained on 10,000 training reviews, scored on 2,000 dev reviews of other movies."""
    train, _ = load_reviews(nsmc_train, DataOptions())
    dev, _ = load_reviews(nsmc_dev, DataOptions())
    fit_on, score_on = sample(train, 10_000, seed=0), sample(dev, 2_000, seed=0)
    classifier = RatingClassifier().fit(
        [r.text for r in fit_on], [sentiment_band(r.rating, 10) for r in fit_on]
    )
    score = classifier.score(
        [r.text for r in score_on],
        [sentiment_band(r.rating, 10) for r in score_on],
        train_size=len(fit_on),
    )
    assert score.bands == ("negative", "neutral", "positive")
    # Chance is 1/3 per band; always answering "positive" scores a balanced accuracy of 1/3
    # and a macro-F1 near 0.26.
    assert score.balanced_accuracy > 0.5
    assert score.macro_f1 > 0.5
    assert score.accuracy > 0.6


class _AlwaysPositive:
    def predict(self, texts: list[str]) -> list[str]:
        return ["positive"] * len(texts)


def test_real_reviews_are_judged_in_the_mix_the_generations_were_requested_in() -> None:
    # Dev reviews as they come are mostly positive; judged as they come, a classifier that always
    # says "positive" would look right 95% of the time. Drawn evenly over the requested ratings,
    # it is right exactly for the positive half.
    dev = [Review(f"좋다 {i}", 10) for i in range(95)] + [Review(f"별로 {i}", 1) for i in range(5)]
    settings = EvalSettings(classifier_test_samples=2_000)

    consistency = real_band_consistency(_AlwaysPositive(), dev, (1, 10), 10, settings)

    assert consistency["counts"] == {"negative": 5, "positive": 5}
    assert consistency["overall"] == 0.5
    # A requested rating the dev data lacks is left out rather than failing the evaluation.
    assert real_band_consistency(_AlwaysPositive(), dev, (1, 5, 10), 10, settings)["counts"] == {
        "negative": 5,
        "positive": 5,
    }


# --------------------------------------------------------------------------- end to end


SMALL_EVAL = EvalSettings(
    per_rating=2,
    max_new_tokens=16,
    ppl_samples=48,
    classifier_samples=2_000,
    classifier_test_samples=300,
)


def test_eval_compares_base_and_adapter(
    tiny_model_dir: Path, adapter: Path, train_slice: Path, nsmc_dev: Path
) -> None:
    report = run_eval(
        str(tiny_model_dir), nsmc_dev, train_slice, adapter=adapter, settings=SMALL_EVAL
    )

    assert report["rating_scale"] == 10
    assert report["ratings"] == list(range(1, 11))
    assert report["classifier"]["test_size"] == 300
    results = report["results"]
    assert set(results) == {"base", "adapter", "real"}
    for name in ("base", "adapter"):
        result = results[name]
        consistency = result["rating_consistency"]
        assert consistency["counts"] == {"negative": 8, "neutral": 6, "positive": 6}
        assert 0 <= consistency["overall"] <= 1
        assert 0 < result["distinct_1"] <= 1
        assert 0 <= result["copy_rate"] <= 1
        assert result["perplexity_tokens"] > 0
        assert len(result["samples"]) == 20
    # The adapter was trained on this kind of text: it predicts real replies better than the base.
    assert results["adapter"]["perplexity"] < results["base"]["perplexity"]

    markdown = format_markdown(report)
    assert "| measure | base | base + adapter | real reviews |" in markdown
    assert "| … neutral (5-7) |" in markdown
    assert "## Samples: base + adapter" in markdown


def test_eval_cli_finds_base_and_training_data_through_the_adapter(
    tiny_model_dir: Path,
    adapter: Path,
    train_slice: Path,
    nsmc_dev: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["finetune", "eval", "--adapter", str(adapter), "--data", str(nsmc_dev)]
    options = ["--per-rating", "1", "--ratings", "1,10", "--max-new-tokens", "8"]
    sizes = ["--ppl-samples", "16", "--classifier-samples", "1000", "--out", str(tmp_path)]
    assert main([*args, *options, *sizes, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "eval.json").read_text(encoding="utf-8"))
    assert printed == saved
    assert saved["model"] == str(tiny_model_dir)
    assert Path(saved["train_data"]) == train_slice.resolve()
    assert saved["ratings"] == [1, 10]
    assert (tmp_path / "eval.md").read_text(encoding="utf-8").startswith("# Adapter evaluation")


def test_eval_of_the_base_model_alone(
    tiny_model_dir: Path, train_slice: Path, nsmc_dev: Path
) -> None:
    settings = EvalSettings(
        per_rating=1, ratings=(2, 9), max_new_tokens=4, ppl_samples=8, classifier_samples=500
    )
    report = run_eval(str(tiny_model_dir), nsmc_dev, train_slice, settings=settings)
    assert set(report["results"]) == {"base", "real"}
    assert "base + adapter" not in format_markdown(report)


def test_eval_cli_needs_training_data(nsmc_dev: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["finetune", "eval", "--data", str(nsmc_dev)]) == 2
    assert "--train is required" in capsys.readouterr().err


def test_eval_settings_reject_nonsense() -> None:
    with pytest.raises(InvalidInput):
        EvalSettings(per_rating=0)
    with pytest.raises(InvalidInput):
        EvalSettings(top_p=1.5)
