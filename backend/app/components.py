"""Builds the long-lived parts once (store, jobs, embedder, LLM, retriever, indexer) from settings.

The API's lifespan and the CLI both use this, so the wiring exists in one place. The models (the
chat model and the review writer) are built on first use: commands that only ingest or search
never load one; the server builds the heavy ones at start-up (``load_models``).
"""

from __future__ import annotations

import asyncio
from functools import cached_property
from pathlib import Path

from app.core.config import Settings
from app.core.logger import get_logger
from app.jobs.store import JobStore
from app.models.base import EmbeddingClient, GenerationOptions, LLMClient
from app.models.factory import (
    build_embedding_client,
    build_llm_client,
    build_review_model,
    capabilities_of,
    shares_local_base,
)
from app.models.review_model import ReviewModel
from app.pipelines.adapters import ServedAdapters
from app.pipelines.rag import RAGPipeline
from app.retriever.adapter_records import AdapterRecords
from app.retriever.embedded_postgres import embedded_server, resolve_database_url
from app.retriever.hybrid import HybridRetriever
from app.retriever.indexer import Indexer
from app.retriever.parsing import ParseLimits, stop_parsing
from app.retriever.types import IngestResult, Retriever
from app.retriever.vector_store import PGVectorStore
from app.tuning.datasets import DatasetStore

log = get_logger(__name__)

SAMPLE_CORPUS_DIR = Path(__file__).parent / "sample_corpus"
_SAMPLE_MARKER = ".sample-corpus-indexed"


def make_rag_pipeline(llm: LLMClient, retriever: Retriever, settings: Settings) -> RAGPipeline:
    """The chain over ``llm`` and ``retriever`` with the configured sampling defaults."""
    generation = GenerationOptions(
        temperature=settings.llm.temperature, max_tokens=settings.llm.max_tokens
    )
    return RAGPipeline(llm, retriever, generation=generation)


class Components:
    """The application's heavy objects, opened together and closed together."""

    def __init__(self, settings: Settings, *, schema: str = "rag") -> None:
        self.settings = settings
        for note in settings.review_role().deprecations:
            log.warning("%s", note)
        self.database_url = resolve_database_url(settings.database)
        self.embedder: EmbeddingClient = build_embedding_client(settings.embedding, settings.llm)
        self.store = PGVectorStore(
            self.database_url,
            dimension=self.embedder.dimension,
            embedder_name=self.embedder.name,
            schema=schema,
            pool_min=settings.database.pool_min,
            pool_max=settings.database.pool_max,
            connect_timeout_s=settings.database.connect_timeout_s,
            ef_search=settings.retrieval.ef_search,
        )
        self.store.open()
        self.jobs = JobStore(
            self.database_url,
            schema=schema,
            pool_max=settings.database.pool_max,
            connect_timeout_s=settings.database.connect_timeout_s,
        )
        self.jobs.open()
        self.datasets = DatasetStore(
            self.database_url,
            root=settings.finetune_dir() / "datasets",
            max_bytes=settings.finetune.max_dataset_mb * 1024 * 1024,
            schema=schema,
            connect_timeout_s=settings.database.connect_timeout_s,
        )
        self.datasets.open()
        self.retriever = HybridRetriever(self.store, self.embedder, settings.retrieval)
        self.indexer = Indexer(
            self.store,
            self.embedder,
            settings.retrieval,
            max_file_bytes=settings.api.max_upload_bytes,
            parse_limits=ParseLimits.from_settings(settings.parsing),
        )

    @property
    def database_mode(self) -> str:
        """``embedded`` when the bundled server is used, ``external`` for ``DATABASE_URL``."""
        return "external" if self.settings.database.url else "embedded"

    @cached_property
    def llm(self) -> LLMClient:
        """The configured chat model, built on first use."""
        return build_llm_client(self.settings.llm)

    @cached_property
    def reviews(self) -> ReviewModel:
        """The review writer, built on first use (on the chat model when they share a base)."""
        chat = self.llm if shares_local_base(self.settings) else None
        return build_review_model(self.settings, chat=chat)

    @cached_property
    def adapters(self) -> ServedAdapters:
        """The review writer's adapters: listed, loaded at run time, kept in the database."""
        records = AdapterRecords(
            self.database_url,
            self.store.schema,
            connect_timeout_s=self.settings.database.connect_timeout_s,
        )
        return ServedAdapters(self.reviews, records)

    def load_models(self) -> None:
        """Build the models that are heavy to build and load the adapters stored by earlier runs,
        so that a bad setting stops start-up instead of failing the first request."""
        if capabilities_of(self.settings.llm.provider).loads_at_startup:
            _ = self.llm
        if capabilities_of(self.settings.review_role().provider).loads_at_startup:
            self.adapters.restore()

    def rag_pipeline(self) -> RAGPipeline:
        """A pipeline over the shared retriever and LLM."""
        return make_rag_pipeline(self.llm, self.retriever, self.settings)

    def index_sample_corpus(self) -> list[IngestResult]:
        """Index the bundled documents once per data directory, so a fresh install can answer."""
        marker = self.settings.database.data_dir / _SAMPLE_MARKER
        if marker.exists():
            return []
        results = self.indexer.ingest_path(
            SAMPLE_CORPUS_DIR, collection=self.settings.retrieval.default_collection
        )
        if all(r.outcome != "failed" for r in results):
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("The bundled sample documents were indexed here.\n", encoding="utf-8")
        log.info("sample corpus: %d documents", len(results))
        return results

    async def aclose(self) -> None:
        """Close the models (those that were built), the embedder and the pools."""
        # Files still being read are not waited for: their parsing processes are killed.
        stop_parsing()
        if "reviews" in self.__dict__:
            await self.reviews.aclose()
        if "llm" in self.__dict__:
            await self.llm.aclose()
        self.embedder.close()
        self.datasets.close()
        self.jobs.close()
        self.store.close()
        if self.database_mode == "embedded":
            # Not left to pgserver's exit hook: a SIGTERM (docker stop, systemd) skips it.
            embedded_server(self.settings.database).stop()

    def close(self) -> None:
        """Synchronous close for the CLI."""
        asyncio.run(self.aclose())
