"""Korean retrieval benchmark on KorQuAD 1.0 (dev, part A), through the HTTP API.

Indexes every paragraph as one document (uploaded as JSON Lines), asks every question in each search
mode, and reports recall@1/5/10 and MRR of the paragraph that holds the answer, ingest throughput and
query latency. Writes its table into docs/benchmarks.md.

    make bench-retrieval            # or: .venv/bin/python benchmarks/retrieval.py [--limit N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from api_server import UNLIMITED_RATES, api_server
from app.core.config import (
    APISettings,
    DatabaseSettings,
    EmbeddingSettings,
    LLMSettings,
    RetrievalSettings,
    Settings,
)
from benchmarks_report import replace_section

KORQUAD = ROOT.parent / "shared" / "data" / "korquad" / "dev_part_a.json"
MODES = ("dense", "sparse", "hybrid")
TOP_K = 10


def load_korquad(path: Path) -> tuple[list[dict], list[tuple[str, str]]]:
    """Paragraph documents and (question, id of the paragraph holding its answer) pairs."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    documents, questions = [], []
    for a, article in enumerate(data):
        for p, paragraph in enumerate(article["paragraphs"]):
            doc_id = f"kq-{a:03d}-{p:02d}"
            documents.append(
                {
                    "id": doc_id,
                    "text": paragraph["context"],
                    "metadata": {"title": article["title"]},
                }
            )
            questions += [(qa["question"], doc_id) for qa in paragraph["qas"]]
    return documents, questions


@dataclass
class IndexedKorquad:
    """A live API with every KorQuAD paragraph indexed, and what indexing took."""

    client: httpx.Client
    settings: Settings
    chunks: int
    ingest_s: float


@contextmanager
def korquad_api(
    documents: list[dict], fusion: str = "score", ef_search: int | None = None
) -> Iterator[IndexedKorquad]:
    """Serve the app on an embedded database in a temporary folder and upload ``documents``."""
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            database=DatabaseSettings(data_dir=Path(data_dir)),
            llm=LLMSettings(provider="extractive"),
            embedding=EmbeddingSettings(provider="hash"),
            retrieval=RetrievalSettings(
                fusion=fusion, **({} if ef_search is None else {"ef_search": ef_search})
            ),
            api=APISettings(index_sample_corpus=False),
            auth=UNLIMITED_RATES,
        )
        with (
            api_server(settings, "rag") as url,
            httpx.Client(base_url=url, timeout=600) as client,
        ):
            payload = "\n".join(
                json.dumps(d, ensure_ascii=False) for d in documents
            ).encode()
            start = time.perf_counter()
            response = client.post(
                "/api/documents",
                files=[("files", ("korquad.jsonl", payload, "application/jsonl"))],
            )
            ingest_s = time.perf_counter() - start
            response.raise_for_status()
            chunks = sum(r["chunks"] for r in response.json()["results"])
            yield IndexedKorquad(client, settings, chunks, ingest_s)


def ranked_documents(
    client: httpx.Client, question: str, mode: str
) -> tuple[list[str], float]:
    """Distinct document ids in rank order, and the request's latency in seconds."""
    start = time.perf_counter()
    response = client.post(
        "/api/search", json={"query": question, "mode": mode, "top_k": TOP_K}
    )
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return distinct(hit["document_id"] for hit in response.json()["results"]), elapsed


def distinct(document_ids: Iterable[str]) -> list[str]:
    """The ids in order, each at its first place: a paragraph's rank is its best chunk's."""
    return list(dict.fromkeys(document_ids))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure_mode(
    client: httpx.Client, questions: list[tuple[str, str]], mode: str
) -> dict[str, float | str]:
    """Recall@1/5/10, MRR and latency percentiles of one search mode over ``questions``."""
    ranks, latencies = [], []
    for question, gold in questions:
        ranked, elapsed = ranked_documents(client, question, mode)
        latencies.append(elapsed)
        ranks.append(ranked.index(gold) + 1 if gold in ranked else None)
    n = len(ranks)
    return {
        "mode": mode,
        **{f"r@{k}": sum(1 for r in ranks if r and r <= k) / n for k in (1, 5, 10)},
        "mrr": sum(1 / r for r in ranks if r) / n,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
    }


def ef_sweep(
    documents: list[dict],
    questions: list[tuple[str, str]],
    values: list[int],
    write: bool,
) -> None:
    """Dense and hybrid recall by HNSW ef_search, each value on a fresh index."""
    lines = [
        (
            f"{len(documents)} paragraphs, {len(questions)} questions, the index and settings of "
            "the retrieval table, with `RETRIEVAL_EF_SEARCH` changed alone. A search asks HNSW "
            f"for max(ef_search, 2k) candidates: k = {TOP_K} for dense, the candidates setting "
            "(50) for hybrid's dense ranking, which therefore uses 100 up to ef_search 100."
        ),
        "",
        (
            "| ef_search | dense recall@1 | dense recall@5 | dense p50 ms | hybrid recall@1 "
            "| hybrid recall@5 | hybrid p50 ms |"
        ),
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for ef in values:
        with korquad_api(documents, "score", ef) as indexed:
            dense = measure_mode(indexed.client, questions, "dense")
            hybrid = measure_mode(indexed.client, questions, "hybrid")
        print(
            json.dumps({"ef_search": ef, "dense": dense, "hybrid": hybrid}), flush=True
        )
        lines.append(
            f"| {ef} | {dense['r@1']:.3f} | {dense['r@5']:.3f} | {dense['p50_ms']:.1f} "
            f"| {hybrid['r@1']:.3f} | {hybrid['r@5']:.3f} | {hybrid['p50_ms']:.1f} |"
        )
    lines += [
        "",
        "Reproduce: `.venv/bin/python benchmarks/retrieval.py --ef-sweep "
        + ",".join(map(str, values))
        + "`. Data: KorQuAD 1.0, Lim et al., 2019, CC BY-ND 2.0 KR.",
    ]
    table = "\n".join(lines)
    print(table)
    if write:
        replace_section("Retrieval: HNSW ef_search on KorQuAD", table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--limit", type=int, default=None, help="ask only the first N questions"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only, leave docs/ alone"
    )
    parser.add_argument(
        "--fusion",
        choices=("score", "rrf"),
        default="score",
        help="how hybrid merges rankings",
    )
    parser.add_argument(
        "--ef-search",
        type=int,
        default=None,
        help="HNSW ef_search (default: the setting's default); implies --no-write",
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="search modes to measure, comma-separated",
    )
    parser.add_argument(
        "--ef-sweep",
        default=None,
        help="comma-separated ef_search values: dense and hybrid recall for each, its own table",
    )
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if args.ef_search is not None or modes != list(MODES):
        args.no_write = True

    documents, questions = load_korquad(KORQUAD)
    questions = questions[: args.limit] if args.limit else questions
    if args.ef_sweep:
        values = [int(v) for v in args.ef_sweep.split(",")]
        ef_sweep(
            documents, questions, values, write=not args.no_write and not args.limit
        )
        return
    with korquad_api(documents, args.fusion, args.ef_search) as indexed:
        client, settings = indexed.client, indexed.settings
        chunks, ingest_s = indexed.chunks, indexed.ingest_s
        rows = []
        for mode in modes:
            rows.append(measure_mode(client, questions, mode))
            print(json.dumps(rows[-1]), flush=True)

    fusion_note = (
        f"score fusion (dense weight {settings.retrieval.dense_weight})"
        if args.fusion == "score"
        else f"reciprocal rank fusion (k={settings.retrieval.rrf_k})"
    )
    lines = [
        (
            f"{len(documents)} paragraphs ({chunks} chunks), {len(questions)} questions; embedded PostgreSQL 16 + "
            f"pgvector 0.6, offline `hash` embedder (768-d), Kiwi BM25 over morphemes and eojeol stems, hybrid = {fusion_note}; top-10 chunks per question, "
            "deduplicated to paragraphs. Latency is end to end through the HTTP API on one machine, one client."
        ),
        "",
        "| mode | recall@1 | recall@5 | recall@10 | MRR | p50 ms | p95 ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['mode']} | {r['r@1']:.3f} | {r['r@5']:.3f} | {r['r@10']:.3f} | {r['mrr']:.3f} "
        f"| {r['p50_ms']:.1f} | {r['p95_ms']:.1f} |"
        for r in rows
    ]
    lines += [
        "",
        (
            f"Ingest through `POST /api/documents` (load, chunk, Kiwi, embed, COPY): {chunks} chunks in "
            f"{ingest_s:.1f} s = **{chunks / ingest_s:.0f} chunks/s**."
        ),
        "",
        (
            f"Reproduce: `.venv/bin/python benchmarks/retrieval.py --fusion {args.fusion}` "
            "(`make bench-retrieval` is `--fusion score`, the default). "
            "Data: KorQuAD 1.0, Lim et al., 2019, CC BY-ND 2.0 KR."
        ),
    ]
    table = "\n".join(lines)
    print(table)
    if not args.no_write and not args.limit:
        title = "Retrieval: KorQuAD 1.0 dev, part A"
        if args.fusion == "rrf":
            title += " (hybrid by reciprocal rank fusion, for comparison)"
        replace_section(title, table)


if __name__ == "__main__":
    main()
