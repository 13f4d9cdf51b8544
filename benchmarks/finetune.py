"""Fine-tuning throughput on CPU: `rag finetune train` beside TRL's `SFTTrainer`.

Every trainer trains the same LoRA (rank 16, alpha 32, dropout 0.05, every linear projection) on
the same ~14M-parameter Llama (built locally, nothing downloaded), fp32, one compute thread each,
no gradient checkpointing, loss on the reply only, micro-batches of 4 rows of 512 tokens, on the
same tokens: `rag finetune train` tokenises the data once (a one-step run that writes its
cache), and its examples are exported for the others (``finetune_baselines/data_sets.py``).
Two data sets of the same 2,000 NSMC reviews: ``nsmc`` (the prompt names the rating, ten prompts
in all) and ``titled`` (the prompt also names the review's movie: prompts almost never repeat).

Baselines, each driven by a script in ``finetune_baselines/`` with the python of its own
virtualenv (``finetune_baselines/venvs.py``, installed from PyPI on first use and cached):

- ``trl``: TRL ``SFTTrainer`` as it trains by default: best-fit-decreasing packing, padding-free,
  completion-only loss, its fused LM head (``trl_driver.py``);
- ``hf-padded`` (with ``--trainers``): Hugging Face ``Trainer`` + PEFT on padded batches.

Every driver checks, on the loop's own data loader and model, that only the replies carry labels
and that packed examples do not attend to each other (``finetune_baselines/driver_common.py``).
LLaMA-Factory (``neat_packing``) is not among them: it does not import next to the CPU build of
torch 2.13 (see docs/benchmarks.md).

Each run is a fresh process timing its first ``--steps`` optimizer steps; the trainers take turns
(the order rotating between runs) and the table shows medians. "Useful" tokens are the examples'
own tokens (prompt and reply of each review covered, no padding), so their rate is how fast each
trainer gets through the data. Writes its table into docs/benchmarks.md.

    make bench-finetune     # or: .venv/bin/python benchmarks/finetune.py [--runs N] [--steps N]

With ``--governor`` it measures the load governor instead (short runs of `rag finetune train` at
duty cycle 1.0 / 0.5 and 1 / 2 threads: CPU share and tokens/s) and prints that table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKEND = ROOT / "backend"
sys.path.insert(0, str(BACKEND))

from benchmarks_report import replace_section
from finetune_baselines.data_sets import DataSet, build_data_sets, export_examples
from finetune_baselines.venvs import baseline_python

NSMC = ROOT.parent / "shared" / "data" / "nsmc" / "train.tsv.gz"
DRIVERS = ROOT / "benchmarks" / "finetune_baselines"
REVIEWS = 2000
LORA_R, LORA_ALPHA, LORA_DROPOUT, LR, WARMUP = 16, 32, 0.05, 2e-4, 0.03
ROW_TOKENS, ROWS_PER_BATCH = 512, 4  # up to 2,048 positions per micro-batch
# Enough steps for a steady rate, few enough that 3 runs of every trainer on both data sets fit
# in about 20 minutes on 2 cores.
STEPS = 8
MODEL_SHAPE = {"vocab_size": 8000, "hidden_size": 384, "num_layers": 8}
# One compute thread each by default: on a shared machine, extra threads spin against other
# processes and turn every trainer's numbers into noise.
THREADS = 1
GOVERNOR_STEPS = 12
GOVERNOR_SETTINGS = ((1.0, 1), (1.0, 2), (0.5, 1), (0.5, 2))  # (duty cycle, threads)
TRAINER_NAMES = {
    "ours": "`rag finetune train` (shared-prompt packing, reply-only logits)",
    "trl": "TRL `SFTTrainer` (BFD packing, padding-free, completion-only loss)",
    "hf-padded": "Hugging Face `Trainer` + PEFT, padded batches",
}
DEFAULT_TRAINERS = ("ours", "trl")

Result = dict[str, float]
# What the table shows of each run's result (the drivers' results also hold their checks).
_FIELDS = (
    "useful_tokens_per_s",
    "reviews_per_s",
    "positions_per_review",
    "seconds",
    "peak_mib",
)
CHECKS = (
    "How the baselines were checked (`benchmarks/finetune_baselines/driver_common.py`), on the "
    "data loader and model each one's training loop uses, before its clock starts: one pass over "
    "an epoch of micro-batches counts the labelled positions and sums their token ids, which must "
    "equal the exported replies' (the prompt carries no loss; nothing is truncated, dropped or "
    "trained twice); on the first micro-batch, the logits of up to 8 examples packed behind "
    "another are compared, in eval mode, with those of each example run alone (agreement within "
    "1e-3 required; five examples packed under a plain causal mask instead differ by 1.7). TRL's "
    "padding-free micro-batch is one flat sequence of the 4 packed rows whose position ids "
    "restart at every example, with no attention mask; from those position ids transformers "
    "builds a block-diagonal mask for sdpa, so padding-free training is exact on CPU as well."
)
LLAMA_FACTORY = (
    "LLaMA-Factory (`neat_packing`) is not in the table: 0.9.5, the newest, installs next to "
    "torch 2.13.0 (with transformers 5.6.0, peft 0.18.1, trl 0.24.0, its upper bounds) but does "
    "not import. It imports torchaudio unconditionally (`llamafactory/data/mm_plugin.py`), and "
    "the newest torchaudio on PyPI, 2.11.1, cannot load its library against torch 2.13; the "
    "torchvision it pulls, 0.28.0, links the CUDA build of torch (`libtorch_cuda.so`). An older "
    "torch to match would come from PyPI as a CUDA build. By its code, `neat_packing` without "
    "FlashAttention (as on CPU) pads each packed row to `cutoff_len + 1` tokens and passes a 4-D "
    "block-diagonal mask."
)


@dataclass(frozen=True)
class Prepared:
    """A data set with its tokenised cache (for ours) and exported examples (for the baselines)."""

    data: DataSet
    cache: Path
    examples: Path
    counts: dict[str, int]


def build_model(work: Path) -> Path:
    """The benchmark model: random weights, since throughput does not depend on them."""
    from tests.utils.tiny_lm import build_tiny_model_dir

    return build_tiny_model_dir(work / "model", data=NSMC, **MODEL_SHAPE)


def prepare(model: Path, data: DataSet, work: Path) -> Prepared:
    """Tokenise ``data`` the way `rag finetune train` does (one step, cache kept) and export it."""
    cache = work / f"cache-{data.name}"
    command = train_command(
        model, data.path, work / f"prepare-{data.name}", *data.flags
    )
    _run([*command, "--cache-dir", str(cache), "--max-steps", "1"])
    examples = work / f"examples-{data.name}.jsonl"
    return Prepared(data, cache, examples, export_examples(cache, examples))


def train_command(model: Path, data: Path, output: Path, *extra: str) -> list[str]:
    """`rag finetune train` with the benchmark's LoRA and batch settings."""
    return [
        sys.executable, "-m", "app.cli", "finetune", "train", "--model", str(model),
        "--data", str(data), "--output", str(output), "--micro-batch-size", str(ROWS_PER_BATCH),
        "--grad-accum", "1", "--max-seq-len", str(ROW_TOKENS), "--lora-r", str(LORA_R),
        "--lora-alpha", str(LORA_ALPHA), "--lora-dropout", str(LORA_DROPOUT), "--lr", str(LR),
        "--warmup-ratio", str(WARMUP), "--no-gradient-checkpointing", "--nice", "0",
        "--no-progress", "--save-every", "100000", "--log-every", "100000", *extra,
    ]  # fmt: skip


def run_ours(
    model: Path, data: Prepared, output: Path, threads: int, steps: int
) -> Result:
    """One `rag finetune train` process on the prepared cache, ``steps`` steps."""
    command = train_command(model, data.data.path, output, *data.data.flags)
    extra = ["--cache-dir", str(data.cache), "--max-steps", str(steps)]
    peak_mib = _run([*command, *extra, "--max-threads", str(threads)])
    record = json.loads((output / "run.json").read_text(encoding="utf-8"))
    # Reviews covered, from their tokens: the rows mix a shuffled sample of the reviews.
    reviews = record["tokens"] * data.counts["examples"] / data.counts["tokens"]
    return {
        "useful_tokens_per_s": record["tokens"] / record["elapsed_s"],
        "reviews_per_s": reviews / record["elapsed_s"],
        "positions_per_review": record["positions"] / reviews,
        "seconds": record["elapsed_s"],
        "peak_mib": peak_mib,
    }


def run_driver(
    name: str, model: Path, data: Prepared, output: Path, threads: int, steps: int
) -> Result:
    """One baseline driver process (with its virtualenv's python), ``steps`` steps."""
    python = sys.executable if name == "hf-padded" else str(baseline_python(name))
    driver = DRIVERS / f"{name.replace('-', '_')}_driver.py"
    command = [
        python, str(driver), "--examples", str(data.examples), "--model", str(model),
        "--output", str(output), "--threads", str(threads), "--row-tokens", str(ROW_TOKENS),
        "--rows-per-batch", str(ROWS_PER_BATCH), "--lora-r", str(LORA_R),
        "--lora-alpha", str(LORA_ALPHA), "--lora-dropout", str(LORA_DROPOUT), "--lr", str(LR),
        "--warmup-ratio", str(WARMUP), "--steps", str(steps),
    ]  # fmt: skip
    peak_mib = _run(command, offline=True)
    result = json.loads((output / "result.json").read_text(encoding="utf-8"))
    return result | {"peak_mib": peak_mib}


def rotated(items: list[str], by: int) -> list[str]:
    """``items`` starting at ``by``: each run starts with another trainer."""
    shift = by % len(items)
    return items[shift:] + items[:shift]


def throughput(runs: int, threads: int, steps: int, trainers: list[str]) -> str:
    """Every trainer on both data sets, ``runs`` times, taking turns; the table of medians."""
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        work = Path(tmp)
        model = build_model(work)
        sets = [
            prepare(model, data, work) for data in build_data_sets(NSMC, REVIEWS, work)
        ]
        results: dict[tuple[str, str], list[Result]] = {}
        details: dict[str, dict] = {}
        for run in range(runs):
            for prepared in sets:
                for name in rotated(trainers, run):
                    out = work / f"{prepared.data.name}-{name}-{run}"
                    out.mkdir()
                    if name == "ours":
                        r = run_ours(model, prepared, out, threads, steps)
                    else:
                        r = run_driver(name, model, prepared, out, threads, steps)
                        details.setdefault(f"{name} {prepared.data.name}", r)
                    results.setdefault((prepared.data.name, name), []).append(r)
                    print(
                        f"run {run + 1}/{runs} {prepared.data.name:6} {name:9} "
                        f"{r['useful_tokens_per_s']:7.0f} useful tok/s "
                        f"{r['reviews_per_s']:6.1f} reviews/s "
                        f"{r['positions_per_review']:6.1f} positions/review "
                        f"{r['seconds']:6.1f} s peak {r['peak_mib']:.0f} MiB",
                        flush=True,
                    )
        record = json.loads(
            (work / "prepare-nsmc" / "run.json").read_text(encoding="utf-8")
        )
    for key, detail in details.items():
        print(
            key, json.dumps({k: detail[k] for k in ("checks", "versions")}), flush=True
        )
    medians = {
        key: {
            field: statistics.median(r[field] for r in rs)
            for field in rs[0]
            if field in _FIELDS
        }
        for key, rs in results.items()
    }
    return report(runs, threads, steps, trainers, sets, record, medians, details)


def report(
    runs: int,
    threads: int,
    steps: int,
    trainers: list[str],
    sets: list[Prepared],
    record: dict,
    medians: dict[tuple[str, str], Result],
    details: dict[str, dict],
) -> str:
    """The section of docs/benchmarks.md: the setup, the table, the ratios and the checks."""
    command = f".venv/bin/python benchmarks/finetune.py --runs {runs} --steps {steps}"
    if trainers != list(DEFAULT_TRAINERS):
        command += f" --trainers {','.join(trainers)}"
    counts = {p.data.name: p.counts for p in sets}
    lines = [
        (
            f"`make bench-finetune` (`{command}`): LoRA rank {LORA_R} on every linear "
            f"projection of a {record['total_params'] / 1e6:.1f}M-parameter Llama "
            f"({record['trainable_params'] / 1e6:.2f}M trainable), the first {REVIEWS:,} NSMC "
            f"reviews ({counts['nsmc']['examples']:,} after de-duplication), fp32 on CPU, "
            f"{threads} compute thread(s) each ({os.cpu_count()} cores), no gradient "
            f"checkpointing, loss on the reply only, micro-batches of {ROWS_PER_BATCH} rows of "
            f"{ROW_TOKENS} tokens, identical tokens for every trainer. Each run times the first "
            f"{steps} optimizer steps of a fresh process; medians of {runs} runs, the trainers "
            "taking turns. Positions per review: sequence positions the model computes per "
            "review, padding included (for `rag finetune train` the reviews a run covered are "
            "estimated from its tokens). `nsmc`: the prompt names the rating "
            f"({counts['nsmc']['prompts']} distinct prompts); `titled`: it also names the "
            f"review's movie (`대상: 영화 <movie_id>`, {counts['titled']['prompts']:,} distinct "
            f"prompts for {counts['titled']['examples']:,} reviews). Load average "
            f"{os.getloadavg()[1]:.1f} over the last 5 minutes at the end: the machine is shared."
        ),
        "",
        "| data | trainer | useful tokens/s | reviews/s | positions per review | train time (s) | peak memory (MiB) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for (data, name), m in medians.items():
        lines.append(
            f"| {data} | {TRAINER_NAMES[name]} | {m['useful_tokens_per_s']:,.0f} | "
            f"{m['reviews_per_s']:.1f} | {m['positions_per_review']:.1f} | {m['seconds']:.1f} | "
            f"{m['peak_mib']:,.0f} |"
        )
    lines.append("")
    for data, goal in (("nsmc", 1.5), ("titled", 1.0)):
        for name in trainers:
            if name == "ours" or (data, name) not in medians:
                continue
            ratio = (
                medians[(data, "ours")]["useful_tokens_per_s"]
                / medians[(data, name)]["useful_tokens_per_s"]
            )
            target = f" (target ≥ {goal}x)" if name == "trl" else ""
            lines.append(
                f"- `{data}`: ours / {name} useful tokens/s **{ratio:.2f}x**{target}"
            )
    lines += ["", CHECKS, "", *checks_text(details), "", LLAMA_FACTORY]
    return "\n".join(lines)


def checks_text(details: dict[str, dict]) -> list[str]:
    """What each baseline's checks found, and the versions it ran."""
    lines = []
    for key, detail in details.items():
        checks, versions = detail["checks"], detail["versions"]
        pinned = ", ".join(
            f"{package} {version}" for package, version in versions.items()
        )
        isolated = (
            f"{checks['packed_examples_checked']} packed examples' logits within "
            f"{checks['max_logit_diff']:.1e} of the examples alone"
            if checks["packed_examples_checked"]
            else "one example per row"
        )
        lines.append(
            f"- {key} ({pinned}): {checks['epoch_label_tokens']:,} labelled tokens per epoch, "
            f"exactly the replies; {isolated}."
        )
    return lines


def governor(runs: int) -> str:
    """Short runs under each governor setting: tokens/s and the share of the machine's CPU used."""
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-governor-") as tmp:
        work = Path(tmp)
        model = build_model(work)
        data = build_data_sets(NSMC, REVIEWS, work)[0].path
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


def _run(command: list[str], *, offline: bool = False) -> float:
    """Run a child process to completion; its peak resident memory in MiB.

    ``offline``: the baselines' libraries are told not to reach the Hugging Face hub.
    """
    env = os.environ | (
        {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"} if offline else {}
    )
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as log:
        process = subprocess.Popen(
            command, cwd=BACKEND, stdout=subprocess.DEVNULL, stderr=log, env=env
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
        "--steps",
        type=int,
        default=STEPS,
        help=f"optimizer steps timed per run (default {STEPS})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=THREADS,
        help=f"compute threads each (default {THREADS})",
    )
    parser.add_argument(
        "--trainers",
        default=",".join(DEFAULT_TRAINERS),
        help=f"comma-separated, of {', '.join(TRAINER_NAMES)} "
        f"(default {','.join(DEFAULT_TRAINERS)})",
    )
    parser.add_argument(
        "--governor", action="store_true", help="measure the load governor"
    )
    args = parser.parse_args()
    if not NSMC.exists():
        raise SystemExit(f"shared data not found at {NSMC}")
    if args.governor:
        print(governor(args.runs))
        return
    trainers = [t.strip() for t in args.trainers.split(",") if t.strip()]
    unknown = [t for t in trainers if t not in TRAINER_NAMES]
    if unknown or "ours" not in trainers:
        raise SystemExit(f"--trainers takes ours and any of {', '.join(TRAINER_NAMES)}")
    table = throughput(args.runs, args.threads, args.steps, trainers)
    print(table)
    replace_section("Fine-tuning throughput", table)


if __name__ == "__main__":
    main()
