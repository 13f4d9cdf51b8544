"""Ingest and query speed on NSMC reviews: the project beside langchain-postgres.

Both sides run on one embedded PostgreSQL 16 + pgvector 0.6 and embed with the project's offline
``hash`` embedder (768-d); each review of ``shared/data/nsmc/train.tsv.gz`` is one document.

- the project: ``rag ingest``'s path (``Indexer.ingest_path`` of a JSON Lines file) and
  ``POST /api/documents`` of the same file to a live server (``ingest_profile.py``), each into a
  fresh schema, Kiwi tokens, BM25 postings and the HNSW index included; then dense, sparse and
  hybrid queries through ``POST /api/search`` (``query_latency.py``);
- langchain-postgres, installed by this script into a temporary virtualenv of its own, driven by
  ``langchain_pg_driver.py`` there: v1 ``PGVector`` (no vector index), v2 ``PGVectorStore``, and
  v2 with an HNSW index built after the rows; ``add_texts`` of 1,000 documents at a time, dense
  queries with ``similarity_search`` in process.

For each size the ingests take turns (the order rotating between runs), then the queries do;
every figure is the median of ``--runs`` runs. The load average is reported: the machine may be
shared.

    .venv/bin/python benchmarks/ingest_compare.py [--sizes 2000,20000] [--runs 3] [--write]

``--sizes 2000,20000,100000`` adds the large corpus (hours on a small machine); ``--venv DIR``
keeps langchain's virtualenv in DIR for the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from api_server import UNLIMITED_RATES, api_server
from app.core.config import Settings
from app.text.korean import get_kiwi
from benchmarks_report import replace_section
from ingest_profile import run_api, run_cli, settings_for, write_nsmc_jsonl
from query_latency import (
    MODES,
    TOP_K,
    database,
    ensure_loaded,
    fixed_queries,
    measure,
    percentile,
)

DRIVER = ROOT / "benchmarks" / "langchain_pg_driver.py"
LANGCHAIN_POSTGRES = "langchain-postgres==0.0.19"
PROJECT_INGEST = {"rag ingest": run_cli, "POST /api/documents": run_api}
LANGCHAIN_STORES = {
    "v1": "langchain `PGVector` (v1, no vector index)",
    "v2": "langchain `PGVectorStore` (v2, no vector index)",
    "v2-hnsw": "langchain v2, HNSW built after the rows",
}
# A stuck driver fails the benchmark instead of holding it.
DRIVER_TIMEOUT_S = 3600
SECTION = "Ingest and query: the project beside langchain-postgres"

Percentiles = tuple[float, float]


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


class LangchainVenv:
    """A virtualenv with langchain-postgres and the project's numpy and psycopg, not the project."""

    def __init__(self, folder: Path, requirement: str) -> None:
        self.python = folder / "bin" / "python"
        if not self.python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        packages = [
            requirement,
            f"numpy=={numpy.__version__}",
            f"psycopg[binary]=={psycopg.__version__}",
        ]
        print(f"installing {' '.join(packages)} into {folder}", flush=True)
        pip = [str(self.python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--disable-pip-version-check", *packages], check=True)

    def drive(self, *args: str) -> dict[str, Any]:
        """One run of the driver; its JSON answer."""
        done = subprocess.run(
            [str(self.python), str(DRIVER), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=DRIVER_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise SystemExit(
                f"langchain driver {args[0]} failed:\n{done.stderr[-3000:]}"
            )
        return json.loads(done.stdout.strip().splitlines()[-1])


def store_name(kind: str, size: int) -> str:
    """The langchain collection (v1) or table (v2, with an ``lc_`` prefix) of one size."""
    return f"{kind.replace('-', '_')}_{size}"


def rotated(items: Sequence[str], by: int) -> list[str]:
    """``items`` starting at ``by``: each run starts with another contestant."""
    shift = by % len(items)
    return list(items[shift:]) + list(items[:shift])


def ingest_rates(
    venv: LangchainVenv, url: str, folder: Path, jsonl: Path, size: int, runs: int
) -> dict[str, list[float]]:
    """Docs/s of each run, per contestant, the contestants taking turns."""

    def project(run: Callable[[str, Path, Path, int], float]) -> Callable[[], float]:
        return lambda: run(url, folder, jsonl, size)

    def langchain(kind: str) -> Callable[[], float]:
        def ingest() -> float:
            name = store_name(kind, size)
            answer = venv.drive(
                "ingest",
                "--store",
                kind,
                "--url",
                url,
                "--name",
                name,
                "--jsonl",
                str(jsonl),
            )
            if answer["documents"] != size:
                raise SystemExit(
                    f"langchain {kind}: {answer['documents']} of {size} stored"
                )
            return float(answer["seconds"])

        return ingest

    contestants = {name: project(run) for name, run in PROJECT_INGEST.items()}
    contestants |= {kind: langchain(kind) for kind in LANGCHAIN_STORES}
    rates: dict[str, list[float]] = {name: [] for name in contestants}
    for run in range(runs):
        for name in rotated(list(contestants), run):
            seconds = contestants[name]()
            rates[name].append(size / seconds)
            print(
                f"{size:>7} ingest {name:20} run {run + 1}: {seconds:7.2f} s"
                f" {size / seconds:8.0f} docs/s  load {load()}",
                flush=True,
            )
    return rates


def query_percentiles(
    venv: LangchainVenv,
    url: str,
    folder: Path,
    size: int,
    queries: list[str],
    queries_file: Path,
    runs: int,
) -> dict[str, list[Percentiles]]:
    """(p50, p95) ms of each run, per project mode and langchain store, taking turns.

    The project's schema is loaded as ``query_latency.py`` loads it (the indexer's tokens and
    chunks, bulk-written); langchain's stores are those of the last ingest run."""
    schema = f"qbench_{size}"
    load_s = ensure_loaded(url, folder, schema, size, "store")
    print(f"{size:>7} project's query schema loaded in {load_s:.1f} s", flush=True)
    results: dict[str, list[Percentiles]] = {m: [] for m in MODES}
    results |= {kind: [] for kind in LANGCHAIN_STORES}
    with api_server(query_server_settings(url, folder), schema) as base:
        for run in range(runs):
            for name in rotated(["project", *LANGCHAIN_STORES], run):
                if name == "project":
                    for mode, figures in measure(base, queries, runs=1).items():
                        results[mode].append(figures)
                    continue
                answer = venv.drive(
                    "query",
                    "--store",
                    name,
                    "--url",
                    url,
                    "--name",
                    store_name(name, size),
                    "--queries",
                    str(queries_file),
                )
                latencies = answer["latencies_ms"]
                results[name].append(
                    (percentile(latencies, 0.5), percentile(latencies, 0.95))
                )
            print(f"{size:>7} queries run {run + 1} done  load {load()}", flush=True)
    return results


def query_server_settings(url: str, folder: Path) -> Settings:
    """The ingest benchmark's settings for the query server: no practical limit on searches
    (each run asks hundreds within a minute), and no worker, as nothing is uploaded."""
    settings = settings_for(url, folder)
    return settings.model_copy(
        update={
            "auth": UNLIMITED_RATES,
            "jobs": settings.jobs.model_copy(update={"serve_workers": 0}),
        }
    )


def drop_size(url: str, size: int) -> None:
    """Free the disk of one size's stores before the next size."""
    tables = ["langchain_pg_embedding", "langchain_pg_collection"]
    tables += [f"lc_{store_name(kind, size)}" for kind in ("v2", "v2-hnsw")]
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table))
            )
        schema = sql.Identifier(f"qbench_{size}")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))


def median_pair(pairs: Sequence[Percentiles]) -> Percentiles:
    """Medians of the p50s and of the p95s."""
    return statistics.median(p for p, _ in pairs), statistics.median(
        p for _, p in pairs
    )


def report(
    sizes: Sequence[int],
    rates: dict[int, dict[str, list[float]]],
    latencies: dict[int, dict[str, list[Percentiles]]],
) -> list[str]:
    """The table: a row per figure, a column per size."""
    lines = [
        "| | " + " | ".join(f"{size:,} docs" for size in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]

    def row(label: str, cells: Sequence[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    def rate(size: int, name: str) -> float:
        return statistics.median(rates[size][name])

    for name in PROJECT_INGEST:
        row(f"`{name}` (docs/s)", [f"{rate(s, name):,.0f}" for s in sizes])
    for kind, label in LANGCHAIN_STORES.items():
        row(f"{label} (docs/s)", [f"{rate(s, kind):,.0f}" for s in sizes])
    for name in PROJECT_INGEST:
        for kind in ("v1", "v2"):
            ratios = [rate(s, name) / rate(s, kind) for s in sizes]
            row(f"`{name}` ÷ langchain {kind}", [f"{r:.2f}x" for r in ratios])
    for mode in MODES:
        pairs = [median_pair(latencies[s][mode]) for s in sizes]
        row(
            f"project {mode}, p50 / p95 ms (API)",
            [f"{a:.1f} / {b:.1f}" for a, b in pairs],
        )
    for kind, label in LANGCHAIN_STORES.items():
        pairs = [median_pair(latencies[s][kind]) for s in sizes]
        row(f"{label}, dense p50 / p95 ms", [f"{a:.1f} / {b:.1f}" for a, b in pairs])
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="2000,20000", help="reviews, comma-separated"
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="runs per size; medians are reported"
    )
    parser.add_argument(
        "--langchain",
        default=LANGCHAIN_POSTGRES,
        help="the langchain-postgres requirement",
    )
    parser.add_argument(
        "--venv",
        type=Path,
        default=None,
        help="keep langchain's virtualenv here and reuse it (default: a temporary one)",
    )
    parser.add_argument(
        "--write", action="store_true", help="write the table to docs/benchmarks.md"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if not sizes or min(sizes) < 1 or args.runs < 1:
        parser.error("sizes and runs must be positive")
    started = time.perf_counter()
    # Loading Kiwi's model is a one-off cost of a process, not of ingesting.
    get_kiwi()
    queries = fixed_queries()
    rates: dict[int, dict[str, list[float]]] = {}
    latencies: dict[int, dict[str, list[Percentiles]]] = {}
    with tempfile.TemporaryDirectory(prefix="rag-bench-langchain-") as scratch:
        venv = LangchainVenv(args.venv or Path(scratch) / "venv", args.langchain)
        versions = venv.drive("versions")
        print(f"langchain side: {json.dumps(versions)}", flush=True)
        queries_file = Path(scratch) / "queries.json"
        queries_file.write_text(
            json.dumps(queries, ensure_ascii=False), encoding="utf-8"
        )
        with database(None, None) as (url, folder):
            with psycopg.connect(url, autocommit=True) as conn:
                # Both sides find pgvector's type in public, where langchain's tables go.
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                server = conn.execute(
                    "SELECT current_setting('server_version'), extversion FROM pg_extension"
                    " WHERE extname = 'vector'"
                ).fetchone()
            assert server is not None
            print(f"cores {os.cpu_count()}, load {load()}", flush=True)
            for size in sizes:
                jsonl = folder / f"nsmc-{size}.jsonl"
                write_nsmc_jsonl(jsonl, size)
                rates[size] = ingest_rates(venv, url, folder, jsonl, size, args.runs)
                latencies[size] = query_percentiles(
                    venv, url, folder, size, queries, queries_file, args.runs
                )
                drop_size(url, size)
                # Each size's figures are kept as soon as they are measured.
                text = section(
                    args,
                    [s for s in sizes if s in rates],
                    rates,
                    latencies,
                    versions=versions,
                    server=server,
                    queries=len(queries),
                    minutes=(time.perf_counter() - started) / 60,
                )
                print(text, flush=True)
                if args.write:
                    replace_section(SECTION, text)


def section(
    args: argparse.Namespace,
    done: Sequence[int],
    rates: dict[int, dict[str, list[float]]],
    latencies: dict[int, dict[str, list[Percentiles]]],
    *,
    versions: dict[str, str],
    server: tuple[str, str],
    queries: int,
    minutes: float,
) -> str:
    """The report's section: what was measured and how, the table, the command."""
    command = f".venv/bin/python benchmarks/ingest_compare.py --sizes {args.sizes} --runs {args.runs}"
    if args.langchain != LANGCHAIN_POSTGRES:
        command += f" --langchain '{args.langchain}'"
    sizes = ", ".join(f"{size:,}" for size in done)
    lines = [
        (
            "NSMC reviews (`train.tsv.gz`), one document per review, on one embedded PostgreSQL "
            f"{server[0]} + pgvector {server[1]}, both sides embedding with the project's "
            "offline `hash` embedder (768-d). The project's ingest includes Kiwi tokens, BM25 "
            "postings and its HNSW index; langchain stores text, metadata and vectors "
            "(`add_texts` of 1,000 documents at a time). Queries: the "
            f"{queries} of the query-latency benchmark, top {TOP_K}, the project's through "
            "`POST /api/search` of a server in a process of its own (HTTP included) on documents loaded as that "
            "benchmark loads them, langchain's by `similarity_search` in process on the stores "
            "of the last ingest run. `POST /api/documents` is timed on a server started for the "
            "run (`ingest_profile.py`), so its figure includes the start of the server's worker "
            "process, which a small upload feels most. Ingests take turns, then queries do; "
            "each figure is the "
            f"median of {args.runs} runs. {os.cpu_count()} cores, load average {load()} at the "
            f"end of the last size ({sizes} documents done, {minutes:.0f} min)."
        ),
        "",
        "langchain side, in a virtualenv of its own: "
        + ", ".join(f"{name} {version}" for name, version in versions.items())
        + ".",
        "",
        *report(done, rates, latencies),
        "",
        f"Reproduce: `{command} --write` (`make bench-ingest` runs the default sizes).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
