"""Fine-tuning throughput on CPU: `rag finetune train` against a plain Hugging Face Trainer + PEFT.

Both train the same LoRA (rank 16, every linear projection) on the same ~14M-parameter Llama
(built locally, nothing downloaded) for one epoch over the same 2,000 NSMC reviews, rendered and
tokenised identically; the only differences are the trainers' own: shared-prompt packing and
reply-only logits against ordinary padded batches. Each run is a fresh process; runs alternate,
and the table shows medians. "Useful" tokens are the examples' own tokens (prompt and reply of
every review, no padding): the same count for both trainers, so their ratio is the ratio of how
fast each gets through the data. Writes its table into docs/benchmarks.md.

    make bench-finetune            # or: .venv/bin/python benchmarks/finetune.py [--runs N]

With ``--governor`` it measures the load governor instead (short runs of `rag finetune train` at
duty cycle 1.0 / 0.5 and 1 / 2 threads: CPU share and tokens/s) and prints that table.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKEND = ROOT / "backend"
sys.path.insert(0, str(BACKEND))

from benchmarks_report import replace_section

NSMC = ROOT.parent / "shared" / "data" / "nsmc" / "train.tsv.gz"
REVIEWS = 2000
LORA_R, LORA_ALPHA, LR = 16, 32, 2e-4
ROW_TOKENS, ROWS_PER_BATCH = 512, 4  # ours: up to 2,048 positions per micro-batch
BASELINE_BATCH = (
    16  # baseline: 16 reviews per batch (about 2,000 positions once padded)
)
MODEL_SHAPE = {"vocab_size": 8000, "hidden_size": 384, "num_layers": 8}
# One compute thread each by default: on a shared machine, extra threads spin against other
# processes and turn both trainers' numbers into noise.
THREADS = 1
GOVERNOR_STEPS = 12
GOVERNOR_SETTINGS = ((1.0, 1), (1.0, 2), (0.5, 1), (0.5, 2))  # (duty cycle, threads)

Result = dict[str, float]


def build_inputs(work: Path) -> tuple[Path, Path]:
    """The benchmark model (random weights: throughput does not depend on them) and the data."""
    from tests.utils.tiny_lm import build_tiny_model_dir

    data = work / "reviews.tsv"
    with gzip.open(NSMC, "rt", encoding="utf-8") as f:
        data.write_text("".join(next(f) for _ in range(REVIEWS + 1)), encoding="utf-8")
    model = build_tiny_model_dir(work / "model", data=NSMC, **MODEL_SHAPE)
    return model, data


def train_command(model: Path, data: Path, output: Path, *extra: str) -> list[str]:
    """`rag finetune train` with the benchmark's LoRA and batch settings."""
    return [
        sys.executable, "-m", "app.cli", "finetune", "train", "--model", str(model),
        "--data", str(data), "--output", str(output), "--micro-batch-size", str(ROWS_PER_BATCH),
        "--grad-accum", "1", "--max-seq-len", str(ROW_TOKENS), "--lora-r", str(LORA_R),
        "--lora-alpha", str(LORA_ALPHA), "--lr", str(LR), "--no-gradient-checkpointing",
        "--nice", "0", "--no-progress", "--save-every", "100000", "--log-every", "100000",
        *extra,
    ]  # fmt: skip


def run_ours(model: Path, data: Path, output: Path, threads: int) -> Result:
    """One `rag finetune train` process, one epoch."""
    peak_mib = _run(
        train_command(
            model, data, output, "--epochs", "1", "--max-threads", str(threads)
        )
    )
    record = json.loads((output / "run.json").read_text(encoding="utf-8"))
    reviews = record["data_report"]["kept"]
    return {
        "useful_tokens_per_s": record["tokens"] / record["elapsed_s"],
        "reviews_per_s": reviews / record["elapsed_s"],
        "positions_per_review": record["positions"] / reviews,
        "seconds": record["elapsed_s"],
        "peak_mib": peak_mib,
    }


def run_baseline(model: Path, data: Path, output: Path, threads: int) -> Result:
    """One Trainer + PEFT process (this script in worker mode), one epoch."""
    command = [
        sys.executable, __file__, "--threads", str(threads),
        "--baseline-worker", str(model), str(data), str(output),
    ]  # fmt: skip
    peak_mib = _run(command)
    result = json.loads((output / "baseline.json").read_text(encoding="utf-8"))
    return result | {"peak_mib": peak_mib}


def baseline_worker(model_dir: Path, data: Path, output: Path, threads: int) -> None:
    """Trainer + PEFT with ordinary padding, on exactly the examples `rag finetune train` uses."""
    import torch
    from app.finetune.examples import tokenize_reviews
    from app.hf.chat_template import chat_template_for
    from app.hf.peft_compat import peft_deprecations_silenced
    from app.recipes.data import DataOptions, load_reviews
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    reviews, report = load_reviews(data, DataOptions())
    examples = tokenize_reviews(
        reviews,
        tokenizer,
        rating_scale=report.rating_scale,
        chat_template=chat_template_for(tokenizer),
        max_seq_len=ROW_TOKENS,
    )
    features = []
    for i in range(len(examples)):
        ids, prompt_len = examples.example(i)
        ids = ids.tolist()
        features.append(
            {"input_ids": ids, "labels": [-100] * prompt_len + ids[prompt_len:]}
        )

    pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    counts = {"useful": 0, "positions": 0}

    def collate(batch: list[dict]) -> dict:
        out = pad(batch)
        counts["useful"] += int(out["attention_mask"].sum())
        counts["positions"] += out["attention_mask"].numel()
        return out

    clock: dict[str, float] = {}

    class Timer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            clock["start"] = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            clock["end"] = time.perf_counter()

    torch.manual_seed(0)
    lora = LoraConfig(
        r=LORA_R,
        lora_alpha=LORA_ALPHA,
        lora_dropout=0.05,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    with peft_deprecations_silenced():
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), lora)
    args = TrainingArguments(
        output_dir=str(output / "trainer"),
        per_device_train_batch_size=BASELINE_BATCH,
        num_train_epochs=1,
        learning_rate=LR,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,  # a float below 1 is a share of the steps
        logging_steps=100000,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=features,
        data_collator=collate,
        callbacks=[Timer()],
    )
    trainer.train()
    seconds = clock["end"] - clock["start"]
    result = {
        "useful_tokens_per_s": counts["useful"] / seconds,
        "reviews_per_s": len(features) / seconds,
        "positions_per_review": counts["positions"] / len(features),
        "seconds": seconds,
    }
    (output / "baseline.json").write_text(json.dumps(result), encoding="utf-8")


def throughput(runs: int, threads: int) -> str:
    """Alternate baseline and ours ``runs`` times each; the table of medians."""
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        work = Path(tmp)
        model, data = build_inputs(work)
        results: dict[str, list[Result]] = {"baseline": [], "ours": []}
        for run in range(runs):
            for name, runner in (("baseline", run_baseline), ("ours", run_ours)):
                out = work / f"{name}-{run}"
                out.mkdir()
                r = runner(model, data, out, threads)
                results[name].append(r)
                print(
                    f"run {run + 1}/{runs} {name:8} {r['useful_tokens_per_s']:7.0f} useful tok/s "
                    f"{r['reviews_per_s']:6.1f} reviews/s {r['positions_per_review']:6.1f} "
                    f"positions/review {r['seconds']:7.1f} s peak {r['peak_mib']:.0f} MiB",
                    flush=True,
                )
        record = json.loads((work / "ours-0" / "run.json").read_text(encoding="utf-8"))
    med = {
        name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for name, rs in results.items()
    }
    ratio = med["ours"]["useful_tokens_per_s"] / med["baseline"]["useful_tokens_per_s"]
    lines = [
        (
            f"`make bench-finetune` (`.venv/bin/python benchmarks/finetune.py --runs {runs}`): LoRA "
            f"rank {LORA_R} on every linear projection of a "
            f"{record['total_params'] / 1e6:.1f}M-parameter Llama "
            f"({record['trainable_params'] / 1e6:.2f}M trainable), one epoch over the first "
            f"{REVIEWS:,} NSMC reviews, fp32 on CPU, {threads} compute thread(s) each "
            f"({os.cpu_count()} cores), no gradient checkpointing in either. Medians of {runs} runs "
            "each, alternating, each a fresh process. Positions per review: sequence positions the "
            "model computes per review, padding included. That is where the difference comes from: "
            "a padded batch computes each review's prompt (about three quarters of its tokens) and "
            "its padding; shared-prompt packing computes no padding and one prompt copy per group "
            "of reviews with the same rating."
        ),
        "",
        "| trainer | useful tokens/s | reviews/s | positions per review | train time (s) | peak memory (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names = {
        "baseline": "Hugging Face `Trainer` + PEFT, padded batches",
        "ours": "`rag finetune train` (shared-prompt packing, reply-only logits)",
    }
    for name, m in med.items():
        lines.append(
            f"| {names[name]} | {m['useful_tokens_per_s']:,.0f} | {m['reviews_per_s']:.1f} | "
            f"{m['positions_per_review']:.1f} | {m['seconds']:.1f} | {m['peak_mib']:,.0f} |"
        )
    lines += ["", f"Useful-token throughput ratio: **{ratio:.2f}x** (target ≥ 2x)."]
    return "\n".join(lines)


def governor(runs: int) -> str:
    """Short runs under each governor setting: tokens/s and the share of the machine's CPU used."""
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-governor-") as tmp:
        work = Path(tmp)
        model, data = build_inputs(work)
        results: dict[tuple[float, int], list[Result]] = {
            s: [] for s in GOVERNOR_SETTINGS
        }
        for run in range(runs):
            for duty, threads in GOVERNOR_SETTINGS:
                out = work / f"duty{duty}-threads{threads}-{run}"
                extra = [
                    "--max-steps",
                    str(GOVERNOR_STEPS),
                    "--max-threads",
                    str(threads),
                ]
                _run(train_command(model, data, out, *extra, "--duty-cycle", str(duty)))
                record = json.loads((out / "run.json").read_text(encoding="utf-8"))
                r = {
                    "tokens_per_s": record["tokens"] / record["elapsed_s"],
                    "cpu_share": record["cpu_s"] / (record["elapsed_s"] * cores),
                    "busy_share": record["governor_stats"]["compute_s"]
                    / record["elapsed_s"],
                }
                results[(duty, threads)].append(r)
                print(
                    f"run {run + 1}/{runs} duty {duty} threads {threads}: "
                    f"{r['tokens_per_s']:7.0f} tok/s, CPU {r['cpu_share']:.0%} of {cores} cores",
                    flush=True,
                )
    lines = [
        (
            f"`.venv/bin/python benchmarks/finetune.py --governor --runs {runs}`: "
            f"{GOVERNOR_STEPS} steps of `rag finetune train` per run, same model and data as the "
            f"throughput benchmark, medians of {runs} runs. CPU share: process CPU time over wall "
            f"time of the training loop, as a share of all {cores} cores."
        ),
        "",
        "| duty cycle | threads | useful tokens/s | CPU share of the machine | wall time computing |",
        "|---:|---:|---:|---:|---:|",
    ]
    for (duty, threads), rs in results.items():
        m = {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        lines.append(
            f"| {duty} | {threads} | {m['tokens_per_s']:,.0f} | {m['cpu_share']:.0%} | "
            f"{m['busy_share']:.0%} |"
        )
    return "\n".join(lines)


def _run(command: list[str]) -> float:
    """Run a child process to completion; its peak resident memory in MiB."""
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as log:
        process = subprocess.Popen(
            command, cwd=BACKEND, stdout=subprocess.DEVNULL, stderr=log
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            log.seek(0)
            raise SystemExit(
                f"{' '.join(command[:6])} ... failed:\n{log.read()[-3000:]}"
            )
    return usage.ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of each setting (default 3)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=THREADS,
        help=f"compute threads each (default {THREADS})",
    )
    parser.add_argument(
        "--governor", action="store_true", help="measure the load governor"
    )
    parser.add_argument("--baseline-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_worker:
        baseline_worker(*(Path(p) for p in args.baseline_worker), threads=args.threads)
        return
    if not NSMC.exists():
        raise SystemExit(f"shared data not found at {NSMC}")
    if args.governor:
        print(governor(args.runs))
        return
    table = throughput(args.runs, args.threads)
    print(table)
    replace_section("Fine-tuning throughput", table)


if __name__ == "__main__":
    main()
