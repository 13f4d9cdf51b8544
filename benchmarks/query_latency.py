"""Query latency through the HTTP API on NSMC reviews, one document per review.

Loads the first N reviews of ``shared/data/nsmc/train.tsv.gz`` into a schema of its own on an
embedded PostgreSQL, starts the real server on it and sends a fixed set of queries to
``POST /api/search`` in each mode (dense, sparse, hybrid): by default 150 of a few words cut
from held-out reviews (``dev.tsv.gz``, other movies) and 50 KorQuAD questions. Each run asks
every query once per mode, the modes taking turns; the figures are medians over the runs of
each run's p50 and p95.

Loading goes through the store (``--load store``, the default: Kiwi tokens and chunks exactly as
the indexer makes them, ``write_documents`` of 1,000 documents at a time inside ``bulk_load()``,
which builds the HNSW index after the rows) or through the indexer (``--load indexer``: ``Indexer.ingest_path`` of a JSON
Lines file, the path of ``rag ingest``). Either way the postings are the indexer's
``analyse``/``chunk_analysed`` tokens. The tables are vacuumed and analysed after loading, as
autovacuum does within a minute of a bulk load.

The server runs with the memory settings the application sizes for the machine
(``embedded_tuning``); ``--shared-buffers`` replaces that one. ``--data-dir`` keeps the database
and its loaded schemas for the next run. ``--rankings FILE`` records every query's top chunks per
mode; ``--compare FILE`` of an earlier run on the same database says how many agree.

    .venv/bin/python benchmarks/query_latency.py [--sizes 2000,20000,100000] [--runs 3]
        [--data-dir DIR] [--rankings FILE] [--compare FILE] [--write]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from api_server import UNLIMITED_RATES, api_server
from app.components import Components
from app.core.config import (
    APISettings,
    DatabaseSettings,
    EmbeddingSettings,
    LLMSettings,
    Settings,
)
from app.retriever.chunking import chunk_analysed
from app.retriever.embedded_postgres import EmbeddedPostgres
from app.retriever.store_writes import ChunkRow, DocumentWrite
from app.text import normalize_text
from app.text.korean import analyse, search_tokens
from benchmarks_report import replace_section

DATA = ROOT.parent / "shared" / "data"
NSMC_TRAIN = DATA / "nsmc" / "train.tsv.gz"
NSMC_HELD_OUT = DATA / "nsmc" / "dev.tsv.gz"
KORQUAD = DATA / "korquad" / "dev_part_a.json"
MODES = ("dense", "sparse", "hybrid")
TOP_K = 5
BATCH = 1000
WARM_UP = 20


@dataclass(frozen=True, slots=True)
class Review:
    """One NSMC review."""

    review_id: str
    movie_id: str
    rating: int
    text: str


def read_reviews(path: Path, count: int) -> list[Review]:
    """The first ``count`` non-empty reviews of an NSMC TSV file."""
    reviews = []
    with gzip.open(path, "rt", encoding="utf-8", newline="") as tsv:
        rows = csv.reader(tsv, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(rows)
        for review_id, movie_id, rating, text in rows:
            if text.strip():
                reviews.append(Review(review_id, movie_id, int(rating), text))
                if len(reviews) == count:
                    break
    if len(reviews) < count:
        raise SystemExit(f"{path} holds only {len(reviews)} non-empty reviews")
    return reviews


def fixed_queries(nsmc: int = 150, korquad: int = 50, seed: int = 14) -> list[str]:
    """The query set: a few consecutive words of held-out reviews, then KorQuAD questions.

    Every query has search tokens, so that sparse search has something to look for.
    """
    rng = random.Random(seed)
    held_out = read_reviews(NSMC_HELD_OUT, 10_000)
    rng.shuffle(held_out)
    queries: list[str] = []
    for review in held_out:
        words = review.text.split()
        if len(words) < 2:
            continue
        width = rng.randint(2, min(4, len(words)))
        start = rng.randint(0, len(words) - width)
        query = " ".join(words[start : start + width])
        if search_tokens(query):
            queries.append(query)
        if len(queries) == nsmc:
            break
    data = json.loads(KORQUAD.read_text(encoding="utf-8"))["data"]
    questions = [
        qa["question"]
        for article in data
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]
    return queries + rng.sample(questions, korquad)


def settings_for(url: str, data_dir: Path) -> Settings:
    """The offline defaults on the benchmark's database."""
    return Settings(
        database=DatabaseSettings(url=url, data_dir=data_dir),
        llm=LLMSettings(provider="extractive"),
        embedding=EmbeddingSettings(provider="hash"),
        api=APISettings(
            index_sample_corpus=False, max_upload_mb=200, log_level="WARNING"
        ),
        auth=UNLIMITED_RATES,
    )


def stored_documents(url: str, schema: str) -> int:
    """Ready documents in ``schema``; 0 when it does not exist."""
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'documents'",
            (schema,),
        ).fetchone()
        if exists is None:
            return 0
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.documents WHERE status = 'ready'").format(
                sql.Identifier(schema)
            )
        ).fetchone()
    return int(row[0]) if row else 0


def load_through_store(components: Components, reviews: Sequence[Review]) -> None:
    """Store the reviews with the indexer's tokens and chunks, 1,000 per transaction, in one
    bulk load (the HNSW index is built after the rows)."""
    store, embedder = components.store, components.embedder
    retrieval = components.settings.retrieval
    with store.bulk_load():
        for start in range(0, len(reviews), BATCH):
            batch = reviews[start : start + BATCH]
            texts = [normalize_text(r.text) for r in batch]
            analysed = [analyse(text) for text in texts]
            chunked = [
                chunk_analysed(
                    text,
                    analysis,
                    size=retrieval.chunk_size,
                    overlap=retrieval.chunk_overlap,
                )
                for text, analysis in zip(texts, analysed, strict=True)
            ]
            vectors = iter(
                embedder.embed_documents([c.text for cs in chunked for c in cs])
            )
            writes = []
            for review, analysis, chunks in zip(batch, analysed, chunked, strict=True):
                document_id = f"nsmc-{review.review_id}"
                rows = [
                    ChunkRow(
                        i, c.text, analysis.tokens_in(c.start, c.end), next(vectors), {}
                    )
                    for i, c in enumerate(chunks)
                ]
                writes.append(
                    DocumentWrite(
                        document_id=document_id,
                        collection=retrieval.default_collection,
                        source="nsmc.jsonl",
                        title=document_id,
                        content_hash=document_id,
                        size_bytes=len(review.text.encode("utf-8")),
                        metadata={"movie_id": review.movie_id, "rating": review.rating},
                        chunks=rows,
                    )
                )
            store.write_documents(writes)


def load_through_indexer(
    components: Components, reviews: Sequence[Review], folder: Path
) -> None:
    """``Indexer.ingest_path`` of the reviews as one JSON Lines file."""
    path = folder / "nsmc.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for r in reviews:
            line = {
                "id": f"nsmc-{r.review_id}",
                "text": r.text,
                "metadata": {"movie_id": r.movie_id, "rating": r.rating},
            }
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    results = components.indexer.ingest_path(path)
    failed = [r for r in results if r.outcome == "failed"]
    if failed:
        raise SystemExit(f"ingest failed: {failed[0].error}")


def ensure_loaded(url: str, data_dir: Path, schema: str, size: int, how: str) -> float:
    """Load ``size`` reviews into ``schema`` unless they are there already; seconds taken."""
    if stored_documents(url, schema) == size:
        return 0.0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )
    reviews = read_reviews(NSMC_TRAIN, size)
    start = time.perf_counter()
    components = Components(settings_for(url, data_dir), schema=schema)
    try:
        if how == "store":
            load_through_store(components, reviews)
        else:
            load_through_indexer(components, reviews, data_dir)
    finally:
        components.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute("VACUUM (ANALYZE)")
    elapsed = time.perf_counter() - start
    if stored_documents(url, schema) != size:
        raise SystemExit(
            f"{schema}: {stored_documents(url, schema)} of {size} documents stored"
        )
    return elapsed


def agreement(
    earlier: dict[str, dict[str, dict[str, list[str]]]],
    later: dict[str, dict[str, dict[str, list[str]]]],
) -> dict[str, dict[str, str]]:
    """Per size and mode: of the queries both runs asked, how many got the same top-k list
    (the same chunks in the same order), and how many the same set of chunks."""
    report: dict[str, dict[str, str]] = {}
    for size, modes in later.items():
        for mode, lists in modes.items():
            before = earlier.get(size, {}).get(mode, {})
            asked = [q for q in lists if q in before]
            ordered = sum(lists[q] == before[q] for q in asked)
            as_sets = sum(set(lists[q]) == set(before[q]) for q in asked)
            report.setdefault(size, {})[mode] = (
                f"{ordered}/{len(asked)} same order, {as_sets}/{len(asked)} same chunks"
            )
    return report


def memory_settings(url: str) -> str:
    """The server's memory settings in effect, for the table's caption."""
    names = (
        "shared_buffers",
        "effective_cache_size",
        "work_mem",
        "maintenance_work_mem",
    )
    with psycopg.connect(url, autocommit=True) as conn:
        values = [
            conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(n))).fetchone()
            for n in names
        ]
    return ", ".join(
        f"{name} {value[0] if value else '?'}" for name, value in zip(names, values)
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(
    base_url: str,
    queries: Sequence[str],
    modes: Sequence[str] = MODES,
    runs: int = 3,
    rankings: dict[str, dict[str, list[str]]] | None = None,
) -> dict[str, tuple[float, float]]:
    """``{mode: (p50 ms, p95 ms)}``: medians over ``runs`` of each run's percentiles.

    ``rankings``, when given, receives each mode's top chunk ids per query (the last run's).
    """
    per_run: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    with httpx.Client(base_url=base_url, timeout=60) as client:

        def ask(query: str, mode: str) -> float:
            start = time.perf_counter()
            response = client.post(
                "/api/search", json={"query": query, "mode": mode, "top_k": TOP_K}
            )
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            if rankings is not None:
                hits = response.json()["results"]
                rankings.setdefault(mode, {})[query] = [h["chunk_id"] for h in hits]
            return elapsed * 1000

        for mode in modes:
            for query in queries[:WARM_UP]:
                ask(query, mode)
        for run in range(runs):
            # Each run starts with another mode, so that no mode always follows the same one.
            order = list(modes[run % len(modes) :]) + list(modes[: run % len(modes)])
            for mode in order:
                latencies = [ask(query, mode) for query in queries]
                per_run[mode].append(
                    (percentile(latencies, 0.5), percentile(latencies, 0.95))
                )
    return {
        mode: (
            statistics.median(p50 for p50, _ in results),
            statistics.median(p95 for _, p95 in results),
        )
        for mode, results in per_run.items()
    }


@contextmanager
def database(
    data_dir: Path | None, shared_buffers: str | None
) -> Iterator[tuple[str, Path]]:
    """An embedded PostgreSQL in ``data_dir`` (kept, with its schemas, for the next run) or in
    a temporary folder, with the settings the application sizes for it, and ``shared_buffers``
    instead of its sized one when given; yields its URL and the folder."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = data_dir or Path(scratch)
        server = EmbeddedPostgres(folder / "pg")
        url = server.start()
        with psycopg.connect(url, autocommit=True) as conn:
            # Nothing an earlier run set with ALTER SYSTEM stays in the way.
            conn.execute("ALTER SYSTEM RESET ALL")
            if shared_buffers is not None:
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET shared_buffers = {}").format(
                        sql.Literal(shared_buffers)
                    )
                )
        # The settings take effect when the server starts.
        server.stop()
        url = server.start()
        try:
            yield url, folder
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="2000,20000,100000", help="reviews loaded, comma-separated"
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="runs per size; medians are reported"
    )
    parser.add_argument("--load", choices=("store", "indexer"), default="store")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the database here and reuse its schemas",
    )
    parser.add_argument(
        "--shared-buffers",
        default=None,
        help="PostgreSQL shared_buffers for the run, e.g. 1GB (default: the server's own)",
    )
    parser.add_argument(
        "--rankings",
        type=Path,
        default=None,
        help="write each size's top chunk ids per mode and query to this JSON file",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        default=None,
        help="a --rankings file of an earlier run: report how many top-k lists agree with it",
    )
    parser.add_argument(
        "--write", action="store_true", help="write the table to docs/benchmarks.md"
    )
    args = parser.parse_args()

    sizes = [int(s) for s in args.sizes.split(",")]
    queries = fixed_queries()
    rows = []
    all_rankings: dict[str, dict[str, dict[str, list[str]]]] = {}
    with database(args.data_dir, args.shared_buffers) as (url, folder):
        server_memory = memory_settings(url)
        for size in sizes:
            schema = f"qbench_{size}"
            load_s = ensure_loaded(url, folder, schema, size, args.load)
            rankings = all_rankings.setdefault(str(size), {})
            with api_server(settings_for(url, folder), schema) as base:
                figures = measure(base, queries, runs=args.runs, rankings=rankings)
            rows.append((size, figures))
            line = {"documents": size, "load_s": round(load_s, 1)}
            line |= {mode: [round(v, 1) for v in figures[mode]] for mode in MODES}
            print(json.dumps(line), flush=True)
    if args.rankings is not None:
        args.rankings.write_text(json.dumps(all_rankings, ensure_ascii=False), "utf-8")
    if args.compare is not None:
        earlier = json.loads(args.compare.read_text(encoding="utf-8"))
        print(json.dumps({"same_top_k": agreement(earlier, all_rankings)}), flush=True)

    header = "| documents | " + " | ".join(f"{m} p50 / p95 ms" for m in MODES) + " |"
    lines = [
        (
            f"{len(queries)} queries (150 of 2-4 words from held-out NSMC reviews, 50 KorQuAD "
            f"questions), top {TOP_K}, through `POST /api/search` of a server in a process of its own on the "
            f"embedded PostgreSQL 16 + pgvector 0.6 ({server_memory}), offline `hash` embedder "
            "(768-d), "
            f"one client; medians of {args.runs} runs, the modes taking turns. Load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end."
        ),
        "",
        header,
        "|---:|" + "---:|" * len(MODES),
    ]
    for size, figures in rows:
        cells = " | ".join(f"{figures[m][0]:.1f} / {figures[m][1]:.1f}" for m in MODES)
        lines.append(f"| {size:,} | {cells} |")
    lines += [
        "",
        (
            f"Reproduce: `.venv/bin/python benchmarks/query_latency.py --sizes {args.sizes} "
            f"--runs {args.runs}"
            + (
                f" --shared-buffers {args.shared_buffers}"
                if args.shared_buffers
                else ""
            )
            + " --write`."
        ),
    ]
    table = "\n".join(lines)
    print(table)
    if args.write:
        replace_section("Query latency: NSMC reviews", table)


if __name__ == "__main__":
    main()
