"""Is the hybrid default (score fusion, dense weight 0.2) tuned to the data it is reported on?

KorQuAD 1.0 dev part A is the only Korean retrieval set at hand, and the default weight was chosen
on it. This benchmark checks how much that choice flatters the figure, by split-half cross-
validation over articles: the weight is chosen on the questions of even-numbered articles and
scored on the odd-numbered ones, and the other way round.

Every question's dense and sparse candidates (50 each, as the hybrid retriever takes them) are
fetched once through the HTTP API; each weight is then fused offline with the retriever's own
``score_fusion``, so a sweep costs one pass over the questions. At the default weight the sweep
reproduces the API's hybrid mode (checked on every question). Writes its table into
docs/benchmarks.md.

    make bench-fusion               # or: .venv/bin/python benchmarks/fusion_weight.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from app.retriever.hybrid import score_fusion
from app.retriever.types import SearchHit
from benchmarks_report import replace_section
from retrieval import KORQUAD, TOP_K, distinct, korquad_api, load_korquad

WEIGHTS = tuple(round(w / 10, 1) for w in range(11))


def candidates(
    client: httpx.Client, question: str, mode: str, k: int
) -> list[SearchHit]:
    """The ``k`` best chunks of one search mode, with their scores."""
    response = client.post(
        "/api/search", json={"query": question, "mode": mode, "top_k": k}
    )
    response.raise_for_status()
    return [
        SearchHit(hit["document_id"], hit["chunk_id"], hit["text"], hit["score"])
        for hit in response.json()["results"]
    ]


def rank_of(gold: str, hits: list[SearchHit]) -> int | None:
    """1-based rank of the gold paragraph among the distinct documents of the top chunks."""
    ranked = distinct(hit.document_id for hit in hits[:TOP_K])
    return ranked.index(gold) + 1 if gold in ranked else None


def recall_at_1(ranks: list[int | None]) -> float:
    return sum(1 for r in ranks if r == 1) / len(ranks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-write", action="store_true", help="print only, leave docs/ alone"
    )
    args = parser.parse_args()

    documents, questions = load_korquad(KORQUAD)
    # Document ids are kq-<article>-<paragraph>: the halves split by article, so no paragraph
    # (and no article's vocabulary) is on both sides.
    half = [int(gold.split("-")[1]) % 2 for _, gold in questions]
    ranks: dict[float, list[int | None]] = {w: [] for w in WEIGHTS}
    with korquad_api(documents) as indexed:
        retrieval = indexed.settings.retrieval
        default = retrieval.dense_weight
        mismatches = 0
        for question, gold in questions:
            dense = candidates(indexed.client, question, "dense", retrieval.candidates)
            sparse = candidates(
                indexed.client, question, "sparse", retrieval.candidates
            )
            for weight in WEIGHTS:
                fused = score_fusion(dense, sparse, dense_weight=weight)
                ranks[weight].append(rank_of(gold, fused))
            served = candidates(indexed.client, question, "hybrid", TOP_K)
            ours = score_fusion(dense, sparse, dense_weight=default)[:TOP_K]
            mismatches += [h.chunk_id for h in served] != [h.chunk_id for h in ours]
    if mismatches:
        sys.exit(
            f"the offline fusion differs from the API's hybrid on {mismatches} questions"
        )

    def r1(weight: float, side: int | None) -> float:
        picked = [
            r for r, h in zip(ranks[weight], half, strict=True) if side in (None, h)
        ]
        return recall_at_1(picked)

    lines = [
        (
            f"Recall@1 of hybrid retrieval by dense weight ({len(questions)} questions; "
            "A = even-numbered articles, B = odd-numbered):"
        ),
        "",
        "| dense weight | all | A | B |",
        "| ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {w:.1f}{' (default)' if w == default else ''} | {r1(w, None):.3f} "
        f"| {r1(w, 0):.3f} | {r1(w, 1):.3f} |"
        for w in WEIGHTS
    ]
    held_out = []
    for tuned, scored in ((0, 1), (1, 0)):
        best = max(WEIGHTS, key=lambda w: r1(w, tuned))
        held_out.append((tuned, best, r1(best, scored), r1(default, scored)))
    name = "AB"
    lines += [
        "",
        "Split-half check: the weight that is best on one half, scored on the other.",
        "",
        "| tuned on | best weight there | recall@1 on the other half | default's recall@1 there |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {name[tuned]} | {best:.1f} | {score:.3f} | {at_default:.3f} |"
        for tuned, best, score, at_default in held_out
    ]
    lines += [
        "",
        (
            f"The offline fusion equals the API's hybrid ranking on all {len(questions)} "
            "questions at the default weight. Reproduce: `make bench-fusion`. Data: KorQuAD 1.0, "
            "Lim et al., 2019, CC BY-ND 2.0 KR."
        ),
    ]
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        replace_section(
            "Retrieval: choosing the hybrid dense weight (split-half)", table
        )


if __name__ == "__main__":
    main()
