"""Reviews that fit their rating: a CPU-sized stand-in for the month-long Mi:dm run.

1. A small Llama is pre-trained from scratch on the NSMC training reviews: plain language
   modelling on review text, no ratings, no chat (``reviews_pretrain.py``).
2. A LoRA adapter is trained on rating-conditioned examples of the same reviews, as a fine-tuning
   job through the API: a live server with its own training worker on an embedded PostgreSQL in a
   temporary folder, the reviews uploaded as data sets, the job followed on ``GET /api/jobs/{id}``
   to its end (``reviews_lora.py``). A checkout whose server has no fine-tuning jobs trains with
   `rag finetune train` in a subprocess, on the same recipe.
3. The evaluation (``app.finetune.evaluate.run_eval``, the report the job stores): reviews are
   generated for every rating 1-10 by the base and by the adapter, and a classifier trained on
   real training reviews judges which sentiment band (1-4 / 5-7 / 8-10) each one reads as; real dev
   reviews are judged by the same classifier.
4. Whether base and adapter read the rating at all: the likelihood of real reviews under their own
   rating against the opposite one (``reviews_sensitivity.py``).

Target: the adapter's judged band accuracy at least the real reviews' and at least the base's
+ 0.25. Writes its table into docs/benchmarks.md.

    make bench-reviews        # or: .venv/bin/python benchmarks/reviews.py [--via api|cli]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BACKEND = ROOT / "backend"
sys.path.insert(0, str(BACKEND))

from benchmarks_report import replace_section
from reviews_lora import LoraResult, api_has_finetune_jobs, train_via_api, train_via_cli
from reviews_pretrain import PretrainRecipe, pretrain_base, read_review_texts
from reviews_sensitivity import rating_sensitivity

NSMC = ROOT.parent / "shared" / "data" / "nsmc"
TRAIN, DEV = NSMC / "train.tsv.gz", NSMC / "dev.tsv.gz"
SECTION = "Review writing: rating consistency of a LoRA adapter (CPU stand-in)"

# The fine-tuning data set: the first reviews of the training file. The adapter trains on at most
# ``max_per_rating`` of each rating (NSMC is 43% ten-star); the judging classifier learns from
# 30,000 of them.
LORA_REVIEWS = 80_000
# Field names of `rag finetune train` / POST /api/finetune/jobs. A rate far above the 2e-4 used
# for billion-parameter models: this base is small and has never seen a chat prompt.
RECIPE: dict[str, Any] = {
    "method": "lora",
    "epochs": 1.0,
    "micro_batch_size": 4,
    "grad_accum": 1,
    "lr": 2e-3,
    "warmup_ratio": 0.05,
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    "max_seq_len": 512,
    "gradient_checkpointing": False,
    "save_every": 50,
    "log_every": 5,
    "data_options": {"max_per_rating": 1600},
    "governor": {"niceness": 0, "max_threads": 1},
}
EVAL: dict[str, Any] = {
    "per_rating": 20,
    "max_new_tokens": 64,
    "batch_size": 40,
    "ppl_samples": 300,
    "classifier_samples": 30_000,
}
TARGET_MARGIN = 0.25


def write_train_file(path: Path, reviews: int) -> Path:
    """The first ``reviews`` rows of the NSMC training file, header included, as a plain TSV."""
    with gzip.open(TRAIN, "rt", encoding="utf-8") as f:
        path.write_text("".join(next(f) for _ in range(reviews + 1)), encoding="utf-8")
    return path


def evaluate_locally(base: Path, adapter: Path, train_file: Path) -> dict[str, Any]:
    """`rag finetune eval`'s report for an adapter trained outside the API."""
    import torch
    from app.finetune.evaluate import EvalSettings, run_eval

    torch.set_num_threads(1)
    return run_eval(
        str(base), DEV, train_file, adapter=adapter, settings=EvalSettings(**EVAL)
    )


def report(
    pretrained: dict[str, Any],
    lora: LoraResult,
    evaluation: dict[str, Any],
    sensitivity: dict[str, Any],
    total_s: float,
) -> str:
    """The Markdown section: set-up, the table, the target and a few samples."""
    results, recipe = evaluation["results"], pretrained["recipe"]
    consistency = {
        name: results[name]["rating_consistency"]
        for name in ("real", "base", "adapter")
    }
    overall = {name: c["overall"] for name, c in consistency.items()}
    clf = evaluation["classifier"]
    run = lora.run
    via = {
        "api": "a fine-tuning job through the API (`POST /api/finetune/datasets`, "
        "`POST /api/finetune/jobs`, followed on `GET /api/jobs/{id}`; the job's own evaluation)",
        "cli": "`rag finetune train` in a subprocess (the server of this checkout has no "
        "fine-tuning jobs), evaluated with `app.finetune.evaluate.run_eval`",
    }[lora.via]
    losses = lora.losses
    lines = [
        (
            f"`make bench-reviews` (`.venv/bin/python benchmarks/reviews.py --via {lora.via}`) on CPU, "
            f"one compute thread ({os.cpu_count()} cores, shared), {total_s / 60:.1f} min in all; "
            "pre-training with bfloat16 matrix products, the adapter's training and evaluation in fp32."
        ),
        "",
        (
            f"- **Base**: a {pretrained['params'] / 1e6:.1f}M-parameter Llama ({recipe['num_layers']} "
            f"layers, hidden {recipe['hidden_size']}, byte-level BPE of {pretrained['vocab']:,} tokens "
            f"trained on {recipe['tokenizer_reviews']:,} reviews) pre-trained from scratch on the "
            f"{pretrained['reviews']:,} NSMC training reviews as plain text (no ratings, no chat): "
            f"{recipe['steps']} steps of {recipe['batch_rows']} × {recipe['block_tokens']} tokens "
            f"({pretrained['tokens_seen'] / 1e6:.2f}M tokens, {pretrained['epochs_seen']:.2f} epochs), "
            f"loss {pretrained['first_loss']:.2f} → {pretrained['final_loss']:.2f}, "
            f"{pretrained['seconds'] / 60:.1f} min."
        ),
        (
            f"- **Adapter**: LoRA rank {RECIPE['lora_r']} (alpha {RECIPE['lora_alpha']}) on every "
            f"linear projection, {run['trainable_params'] / 1e6:.2f}M trainable, lr {RECIPE['lr']}, "
            f"trained by {via}: {run['data_report']['kept']:,} rating-conditioned reviews (at most "
            f"{RECIPE['data_options']['max_per_rating']} per rating from the first "
            f"{LORA_REVIEWS:,} training reviews), {RECIPE['epochs']:g} epoch(s) = {lora.steps} steps, "
            f"loss {losses[0]:.2f} → {losses[-1]:.2f}, {lora.seconds / 60:.1f} min "
            f"({'training and evaluation' if lora.via == 'api' else 'training'})."
        ),
        (
            f"- **Judge**: character n-gram TF-IDF + logistic regression on {clf['train_size']:,} "
            f"training reviews' bands; accuracy {clf['accuracy']:.3f} on {clf['test_size']:,} dev "
            f"reviews (balanced {clf['balanced_accuracy']:.3f}, majority baseline "
            f"{clf['majority_baseline']:.3f}). Each model writes {EVAL['per_rating']} reviews for "
            f"each rating 1-10 (temperature {evaluation['settings']['temperature']}, top-p "
            f"{evaluation['settings']['top_p']}); band accuracy = share judged in the requested "
            "band. Real reviews: the judge on real dev reviews drawn evenly over the same ratings "
            "(as many of each as the rarest has), the ceiling it allows for that mix."
        ),
        "",
        "| measure | real dev reviews | base (pre-trained LM) | base + adapter |",
        "|---|---:|---:|---:|",
        _row(
            "band accuracy, overall",
            consistency,
            lambda c: c["overall"],
            "{:.3f}",
            bold=True,
        ),
    ]
    for band, span in (("negative", "1-4"), ("neutral", "5-7"), ("positive", "8-10")):
        lines.append(
            _row(
                f"… {band} ({span})",
                consistency,
                lambda c, b=band: c["by_band"].get(b),
                "{:.3f}",
            )
        )
    lines += [
        _row(
            "reply perplexity on dev reviews",
            results,
            lambda r: r.get("perplexity"),
            "{:.1f}",
        ),
        _row("distinct-1", results, lambda r: r["distinct_1"], "{:.3f}"),
        _row("distinct-2", results, lambda r: r["distinct_2"], "{:.3f}"),
        _row(
            "copied from the training set", results, lambda r: r["copy_rate"], "{:.1%}"
        ),
        _row("empty generations", results, lambda r: r.get("empty_rate"), "{:.1%}"),
        "",
    ]
    meets_real = overall["adapter"] >= overall["real"]
    meets_base = overall["adapter"] >= overall["base"] + TARGET_MARGIN
    lines.append(
        f"Target: adapter ≥ real reviews ({overall['adapter']:.3f} vs {overall['real']:.3f}: "
        f"**{'met' if meets_real else 'missed'}**) and adapter ≥ base + {TARGET_MARGIN} "
        f"({overall['adapter']:.3f} vs {overall['base'] + TARGET_MARGIN:.3f}: "
        f"**{'met' if meets_base else 'missed'}**)."
    )
    gaps = {name: sensitivity[name]["gap"] for name in ("base", "adapter")}
    lines += [
        "",
        (
            f"Does the model read the rating? Reply loss of {sensitivity['reviews_per_end']} "
            "1-2★ and as many 9-10★ dev reviews under a 1★ and a 10★ prompt: a review is "
            f"{gaps['base']:+.4f} nats/token more likely under its own end of the scale for the "
            f"base, {gaps['adapter']:+.4f} for the adapter (0 = the rating is ignored)."
        ),
    ]
    lines += [
        "",
        (
            "What was tried to make this stand-in read its rating, and what moved: "
            'docs/finetune.md, "The CPU stand-in".'
        ),
    ]
    lines += ["", "Samples (requested rating, judged band):", ""]
    for name in ("base", "adapter"):
        for sample in results[name]["samples"]:
            if sample["rating"] in (1, 5, 10):
                lines.append(
                    f"- {name}, ★{sample['rating']} ({sample['predicted_band']}): "
                    f"{sample['text'] or '(empty)'}"
                )
    return "\n".join(lines)


def _row(
    label: str, columns: dict[str, Any], value: Any, fmt: str, *, bold: bool = False
) -> str:
    cells = []
    for name in ("real", "base", "adapter"):
        got = value(columns[name])
        cell = "-" if got is None else fmt.format(got)
        cells.append(f"**{cell}**" if bold and got is not None else cell)
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--via",
        choices=("auto", "api", "cli"),
        default="auto",
        help="train through the API's fine-tuning jobs or `rag finetune train` (default: the API "
        "when this checkout's server has it)",
    )
    parser.add_argument(
        "--pretrain-steps",
        type=int,
        default=PretrainRecipe.steps,
        help="pre-training steps",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print, leave docs as they are"
    )
    args = parser.parse_args()
    for path in (TRAIN, DEV):
        if not path.exists():
            raise SystemExit(f"shared data not found at {path}")
    via = (
        args.via
        if args.via != "auto"
        else ("api" if api_has_finetune_jobs() else "cli")
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-reviews-") as tmp:
        work = Path(tmp)
        pretrained = pretrain_base(
            read_review_texts(TRAIN),
            work / "base",
            PretrainRecipe(steps=args.pretrain_steps),
        )
        print(f"pre-trained: {json.dumps(pretrained)}", flush=True)
        train_file = write_train_file(work / "nsmc-train-head.tsv", LORA_REVIEWS)
        if via == "api":
            lora = train_via_api(work / "base", train_file, DEV, work, RECIPE, EVAL)
            if lora.eval_report is None:
                raise SystemExit("the job succeeded without an evaluation report")
            evaluation = lora.eval_report
        else:
            lora = train_via_cli(
                work / "base",
                train_file,
                work / "adapter",
                {**RECIPE, "progress": False},
            )
            evaluation = evaluate_locally(work / "base", lora.adapter, train_file)
        sensitivity = rating_sensitivity(work / "base", lora.adapter, DEV)
        print(f"rating sensitivity: {json.dumps(sensitivity)}", flush=True)
        table = report(
            pretrained, lora, evaluation, sensitivity, time.perf_counter() - started
        )
    print(table)
    if not args.no_write:
        replace_section(SECTION, table)


if __name__ == "__main__":
    main()
