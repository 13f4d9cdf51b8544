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

from app.core.config import (
    APISettings,
    DatabaseSettings,
    EmbeddingSettings,
    LLMSettings,
    RetrievalSettings,
    Settings,
)
from app.main import create_app
from benchmarks_report import replace_section
from tests.utils.live_server import live_server

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
    documents: list[dict], fusion: str = "score"
) -> Iterator[IndexedKorquad]:
    """Serve the app on an embedded database in a temporary folder and upload ``documents``."""
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            database=DatabaseSettings(data_dir=Path(data_dir)),
            llm=LLMSettings(provider="extractive"),
            embedding=EmbeddingSettings(provider="hash"),
            retrieval=RetrievalSettings(fusion=fusion),
            api=APISettings(index_sample_corpus=False),
        )
        app = create_app(settings, frontend_dir=None)
        with live_server(app) as url, httpx.Client(base_url=url, timeout=600) as client:
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
    args = parser.parse_args()

    documents, questions = load_korquad(KORQUAD)
    questions = questions[: args.limit] if args.limit else questions
    with korquad_api(documents, args.fusion) as indexed:
        client, settings = indexed.client, indexed.settings
        chunks, ingest_s = indexed.chunks, indexed.ingest_s
        rows = []
        for mode in MODES:
            ranks, latencies = [], []
            for question, gold in questions:
                ranked, elapsed = ranked_documents(client, question, mode)
                latencies.append(elapsed)
                ranks.append(ranked.index(gold) + 1 if gold in ranked else None)
            n = len(ranks)
            rows.append(
                {
                    "mode": mode,
                    **{
                        f"r@{k}": sum(1 for r in ranks if r and r <= k) / n
                        for k in (1, 5, 10)
                    },
                    "mrr": sum(1 / r for r in ranks if r) / n,
                    "p50_ms": statistics.median(latencies) * 1000,
                    "p95_ms": percentile(latencies, 0.95) * 1000,
                }
            )
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
