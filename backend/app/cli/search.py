"""``rag search`` and ``rag ask``: the index's hits, and answers with the passages they cite."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any

from app.cli.common import open_components, print_json
from app.core.config import SEARCH_MODES, Settings, get_settings

if TYPE_CHECKING:
    from app.pipelines.rag import Source


def cmd_search(args: argparse.Namespace) -> int:
    from app.api.routers.search import to_search_result

    with open_components() as components:
        hits = components.retriever.search(
            args.query,
            top_k=args.top_k,
            mode=args.mode,
            collection=args.collection,
        )
    if args.json:
        print_json({"results": [to_search_result(h).model_dump(mode="json") for h in hits]})
        return 0
    if not hits:
        print("no results")
    for rank, hit in enumerate(hits, start=1):
        title = hit.metadata.get("title") or hit.metadata.get("source") or hit.document_id
        snippet = " ".join(hit.text.split())[:160]
        print(f"{rank:2}. [{hit.score:.4f}] {title}  ({hit.document_id})\n    {snippet}")
    return 0


_PAGE_WORDS = {"page": "p.", "slide": "slide", "sheet": "sheet"}


def citation_line(source: Source) -> str:
    """``[1] 휴가규정 — 규정/휴가규정.pdf · p. 3 (doc_…)``: the file and where in it."""
    where = source.source or source.filename
    if source.page is not None and source.page_unit is not None:
        pages = f"{source.page}–{source.page_end}" if source.page_end else str(source.page)
        where += f" · {_PAGE_WORDS[source.page_unit]} {pages}"
    if source.page_label:
        where += f": {source.page_label}" if source.page is not None else f" · {source.page_label}"
    return f"[{source.number}] {source.title} — {where} ({source.document_id})"


def cmd_ask(args: argparse.Namespace) -> int:
    from app.pipelines.rag import DoneEvent, RetrievalOptions, SourcesEvent, TokenEvent

    settings: Settings = get_settings()
    options = RetrievalOptions(
        top_k=args.top_k or settings.retrieval.top_k,
        mode=args.mode or settings.retrieval.mode,
        collection=args.collection,
    )
    with open_components() as components:
        pipeline = components.rag_pipeline()
        if args.json:
            result = asyncio.run(pipeline.answer(args.question, options))
            print_json(
                {
                    "answer": result.answer,
                    "sources": [dataclasses.asdict(s) for s in result.sources],
                    "cited": result.cited,
                }
            )
            return 0

        async def stream() -> None:
            sources = []
            async for event in pipeline.stream(args.question, options):
                if isinstance(event, SourcesEvent):
                    sources = event.sources
                elif isinstance(event, TokenEvent):
                    print(event.text, end="", flush=True)
                elif isinstance(event, DoneEvent):
                    print()
            for s in sources:
                print(citation_line(s))

        asyncio.run(stream())
    return 0


def add_search(commands: Any) -> None:
    """Add ``search`` to the ``rag`` command."""
    search = commands.add_parser("search", help="search the index (no LLM)")
    search.add_argument("query")
    search.add_argument("--top-k", type=int, default=5)
    search.add_argument("--mode", choices=SEARCH_MODES, default="hybrid")
    search.add_argument("--collection", default=None)
    search.add_argument("--json", action="store_true", help="print the /api/search objects")
    search.set_defaults(func=cmd_search)


def add_ask(commands: Any) -> None:
    """Add ``ask`` to the ``rag`` command."""
    ask = commands.add_parser("ask", help="answer a question from the documents")
    ask.add_argument("question")
    ask.add_argument("--top-k", type=int, default=None)
    ask.add_argument("--mode", choices=SEARCH_MODES, default=None)
    ask.add_argument("--collection", default=None)
    ask.add_argument("--json", action="store_true", help="print answer and sources as JSON")
    ask.set_defaults(func=cmd_ask)
