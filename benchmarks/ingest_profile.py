"""Ingest throughput on NSMC reviews, one document per review, in-process and through the API.

Each run indexes the first N reviews of ``shared/data/nsmc/train.tsv.gz``, written as a JSON
Lines file (``id``, ``text``, ``metadata``), into a fresh schema of one embedded PostgreSQL:

- ``cli``: ``Indexer.ingest_path`` of the file, the code path of ``rag ingest``;
- ``api``: ``POST /api/documents`` of the same file to a live server.

Both include everything a search needs afterwards (Kiwi tokens, hash vectors, BM25 postings,
the HNSW index). Sizes and modes take turns, and each figure is the median of the runs. The
load average is printed with the figures: the machine may be shared. So is the CPU time each
document costs, in this process and its children (the API's worker) and in the PostgreSQL
server: unlike docs/s, it hardly moves when other work shares the cores. ``--write`` puts the
table in docs/benchmarks.md.

    .venv/bin/python benchmarks/ingest_profile.py [--sizes 2000,20000,100000] [--runs 3] [--write]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from api_server import api_server
from app.components import Components
from app.core.config import (
    APISettings,
    DatabaseSettings,
    EmbeddingSettings,
    LLMSettings,
    Settings,
)
from app.retriever.embedded_postgres import EmbeddedPostgres
from app.text.korean import get_kiwi
from benchmarks_report import replace_section

NSMC = ROOT.parent / "shared" / "data" / "nsmc" / "train.tsv.gz"
MODES = ("cli", "api")


def write_nsmc_jsonl(path: Path, count: int) -> int:
    """The first ``count`` non-empty reviews as JSON Lines at ``path``; returns how many."""
    written = 0
    with (
        gzip.open(NSMC, "rt", encoding="utf-8", newline="") as tsv,
        path.open("w") as out,
    ):
        rows = csv.reader(tsv, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(rows)
        for review_id, movie_id, rating, review in rows:
            if not review.strip():
                continue
            line = {
                "id": f"nsmc-{review_id}",
                "text": review,
                "metadata": {"movie_id": movie_id, "rating": int(rating)},
            }
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            written += 1
            if written == count:
                break
    if written < count:
        raise SystemExit(f"{NSMC} holds only {written} non-empty reviews")
    return written


def settings_for(url: str, data_dir: Path) -> Settings:
    """The offline defaults on the benchmark's server; uploads may be as large as the file."""
    return Settings(
        database=DatabaseSettings(url=url, data_dir=data_dir),
        llm=LLMSettings(provider="extractive"),
        embedding=EmbeddingSettings(provider="hash"),
        api=APISettings(
            index_sample_corpus=False, max_upload_mb=200, log_level="WARNING"
        ),
    )


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A schema name of its own for one run, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        yield schema
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(schema)
                )
            )


def check(indexed: int, expected: int, where: str) -> None:
    """Fail loudly rather than report the speed of an ingest that did not store everything."""
    if indexed != expected:
        raise SystemExit(f"{where}: {indexed} of {expected} documents indexed")


def run_cli(url: str, data_dir: Path, jsonl: Path, count: int) -> float:
    """Seconds ``Indexer.ingest_path`` takes for the file, store already open."""
    with fresh_schema(url) as schema:
        components = Components(settings_for(url, data_dir), schema=schema)
        try:
            start = time.perf_counter()
            results = components.indexer.ingest_path(jsonl)
            elapsed = time.perf_counter() - start
        finally:
            components.close()
    check(sum(r.outcome == "indexed" for r in results), count, "cli")
    return elapsed


def run_api(url: str, data_dir: Path, jsonl: Path, count: int) -> float:
    """Seconds ``POST /api/documents`` of the file takes, on a started server."""
    payload = jsonl.read_bytes()
    with (
        fresh_schema(url) as schema,
        api_server(settings_for(url, data_dir), schema) as base,
        httpx.Client(base_url=base, timeout=3600) as client,
    ):
        start = time.perf_counter()
        response = client.post(
            "/api/documents",
            files=[("files", (jsonl.name, payload, "application/jsonl"))],
        )
        elapsed = time.perf_counter() - start
        response.raise_for_status()
    outcomes = [r["outcome"] for r in response.json()["results"]]
    check(outcomes.count("indexed"), count, "api")
    return elapsed


def cpu_seconds(process: psutil.Process) -> float:
    """CPU seconds of ``process`` and its processes, those that ended (and were waited for) too."""
    times = process.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in process.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += child_times.user + child_times.system
    return total


def postmaster(pgdata: Path) -> psutil.Process:
    """The embedded server's main process; its children are the backends and workers."""
    return psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="2000,20000,100000", help="comma-separated counts"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per size and mode")
    parser.add_argument("--modes", default=",".join(MODES), help="cli, api or both")
    parser.add_argument(
        "--write", action="store_true", help="write the table to docs/benchmarks.md"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes {sorted(unknown)}")
    runners: dict[str, Callable[[str, Path, Path, int], float]] = {
        "cli": run_cli,
        "api": run_api,
    }
    # Loading Kiwi's model is a one-off cost of a process, not of ingesting.
    get_kiwi()
    with tempfile.TemporaryDirectory(prefix="rag-bench-ingest-") as folder:
        data_dir = Path(folder)
        server = EmbeddedPostgres(data_dir / "pg")
        url = server.start()
        client, database = psutil.Process(), postmaster(data_dir / "pg")
        try:
            print(f"cores {os.cpu_count()}, load {load()}", flush=True)
            table = io.StringIO()
            table.write(
                "| documents | mode | docs/s (median) | runs (docs/s) | client CPU ms/doc |"
                " server CPU ms/doc | load after |\n"
            )
            table.write("|---:|---|---:|---|---:|---:|---|\n")
            for size in sizes:
                jsonl = data_dir / f"nsmc-{size}.jsonl"
                write_nsmc_jsonl(jsonl, size)
                rates: dict[str, list[float]] = {mode: [] for mode in modes}
                costs: dict[str, list[tuple[float, float]]] = {
                    mode: [] for mode in modes
                }
                for run in range(args.runs):
                    for mode in modes:
                        before = cpu_seconds(client), cpu_seconds(database)
                        elapsed = runners[mode](url, data_dir, jsonl, size)
                        used = (
                            cpu_seconds(client) - before[0],
                            cpu_seconds(database) - before[1],
                        )
                        rates[mode].append(size / elapsed)
                        costs[mode].append(
                            (used[0] * 1000 / size, used[1] * 1000 / size)
                        )
                        print(
                            f"{size:>7} {mode:4} run {run + 1}: {elapsed:7.2f} s"
                            f" {size / elapsed:8.0f} docs/s  CPU ms/doc client {costs[mode][-1][0]:.2f}"
                            f" server {costs[mode][-1][1]:.2f}  load {load()}",
                            flush=True,
                        )
                for mode in modes:
                    runs = ", ".join(f"{r:,.0f}" for r in rates[mode])
                    client_ms = statistics.median(c for c, _ in costs[mode])
                    server_ms = statistics.median(s for _, s in costs[mode])
                    table.write(
                        f"| {size:,} | {mode} | {statistics.median(rates[mode]):,.0f} |"
                        f" {runs} | {client_ms:.2f} | {server_ms:.2f} | {load()} |\n"
                    )
            print()
            print(table.getvalue(), end="")
            if args.write:
                command = " ".join(
                    ["python benchmarks/ingest_profile.py", *sys.argv[1:]]
                )
                body = (
                    f"`{command}` ({os.cpu_count()} cores; the machine may be shared: see the"
                    " load). CPU ms/doc: this process and its children (the API's worker),"
                    " and the PostgreSQL server, per document.\n\n" + table.getvalue()
                )
                replace_section("Ingest throughput: NSMC reviews", body)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
