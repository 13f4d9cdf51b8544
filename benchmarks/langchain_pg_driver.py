"""langchain-postgres on the ingest benchmark's data: run by ``ingest_compare.py`` with the
python of a virtualenv of its own, which holds langchain-postgres and not the project.

The embeddings are the project's offline ``hash`` embedder: its module (``app/models/hash.py``,
numpy and the standard library only) is loaded from its file, without the ``app`` package.

    python langchain_pg_driver.py versions
    python langchain_pg_driver.py ingest --store v1|v2|v2-hnsw --url URL --name NAME --jsonl FILE
    python langchain_pg_driver.py query --store v1|v2|v2-hnsw --url URL --name NAME --queries FILE

Each prints one JSON object: ``versions`` the packages, ``ingest`` the seconds of the load
(``add_texts`` of 1,000 documents at a time, then the HNSW index for ``v2-hnsw``), ``query`` the
milliseconds of each ``similarity_search`` (after a warm-up).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_postgres import PGEngine, PGVector, PGVectorStore
from langchain_postgres.v2.indexes import HNSWIndex
from psycopg import sql

HASH_MODULE = (
    Path(__file__).resolve().parents[1] / "backend" / "app" / "models" / "hash.py"
)
DIMENSION = 768
BATCH = 1000
TOP_K = 5
STORES = ("v1", "v2", "v2-hnsw")
PACKAGES = (
    "langchain-postgres",
    "langchain-core",
    "SQLAlchemy",
    "psycopg",
    "pgvector",
    "numpy",
)


def load_hash_module() -> ModuleType:
    """``app/models/hash.py`` as a module of its own name."""
    spec = importlib.util.spec_from_file_location("rag_hash_embedder", HASH_MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class HashEmbeddings(Embeddings):
    """langchain's ``Embeddings`` over the project's hashing embedder: the same vectors."""

    def __init__(self) -> None:
        self._embedder = load_hash_module().HashEmbedder(DIMENSION)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self._embedder.embed_query(text)


def sqlalchemy_url(url: str) -> str:
    """The libpq URL of the embedded server for SQLAlchemy's psycopg 3 dialect."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def read_documents(
    path: Path,
) -> Iterator[tuple[list[str], list[dict[str, Any]], list[str]]]:
    """The JSON Lines file in batches of texts, metadata and ids."""
    texts: list[str] = []
    metadatas: list[dict[str, Any]] = []
    ids: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            texts.append(record["text"])
            metadatas.append({"id": record["id"], **record["metadata"]})
            ids.append(record["id"])
            if len(texts) == BATCH:
                yield texts, metadatas, ids
                texts, metadatas, ids = [], [], []
    if texts:
        yield texts, metadatas, ids


def v2_table(name: str) -> str:
    return f"lc_{name}"


def open_store(kind: str, url: str, name: str, *, create: bool) -> VectorStore:
    """The store of ``kind`` named ``name`` (a v1 collection, a v2 table), made new if ``create``."""
    embeddings = HashEmbeddings()
    if kind == "v1":
        return PGVector(
            embeddings,
            connection=sqlalchemy_url(url),
            collection_name=name,
            embedding_length=DIMENSION,
            pre_delete_collection=create,
            use_jsonb=True,
        )
    engine = PGEngine.from_connection_string(sqlalchemy_url(url))
    if create:
        # v2 keeps each id as a uuid by default; NSMC ids are text.
        engine.init_vectorstore_table(
            v2_table(name),
            DIMENSION,
            id_column={"name": "langchain_id", "data_type": "text", "nullable": False},
            overwrite_existing=True,
        )
    return PGVectorStore.create_sync(engine, embeddings, v2_table(name))


def v1_tables() -> list[str]:
    return ["langchain_pg_embedding", "langchain_pg_collection"]


def drop_v1_tables(url: str) -> None:
    """Drop v1's tables: all its collections share them, and a row's id is unique across them."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in v1_tables():
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table))
            )


def vacuum(url: str, kind: str, name: str) -> None:
    """Vacuum and analyse the store's tables, as the project's benchmark does after a load."""
    tables = v1_tables() if kind == "v1" else [v2_table(name)]
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))


def ingest(kind: str, url: str, name: str, jsonl: Path) -> dict[str, Any]:
    """Load the file into a new store; seconds of the load and of the index build."""
    if kind == "v1":
        drop_v1_tables(url)
    store = open_store(kind, url, name, create=True)
    count = 0
    start = time.perf_counter()
    for texts, metadatas, ids in read_documents(jsonl):
        store.add_texts(texts, metadatas=metadatas, ids=ids)
        count += len(texts)
    loaded = time.perf_counter()
    if kind == "v2-hnsw":
        assert isinstance(store, PGVectorStore)
        store.apply_vector_index(HNSWIndex())
    end = time.perf_counter()
    vacuum(url, kind, name)
    return {"documents": count, "seconds": end - start, "index_seconds": end - loaded}


def query(
    kind: str, url: str, name: str, queries: list[str], warm_up: int
) -> dict[str, Any]:
    """Milliseconds of each query, once each, after ``warm_up`` of them."""
    store = open_store(kind, url, name, create=False)
    for text in queries[:warm_up]:
        store.similarity_search(text, k=TOP_K)
    latencies = []
    for text in queries:
        start = time.perf_counter()
        found = store.similarity_search(text, k=TOP_K)
        latencies.append((time.perf_counter() - start) * 1000)
        if len(found) != TOP_K:
            raise SystemExit(f"{kind}: {len(found)} results for {text!r}")
    return {"latencies_ms": latencies}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("versions", "ingest", "query"))
    parser.add_argument("--store", choices=STORES)
    parser.add_argument("--url")
    parser.add_argument("--name")
    parser.add_argument("--jsonl", type=Path)
    parser.add_argument("--queries", type=Path)
    parser.add_argument("--warm-up", type=int, default=20)
    args = parser.parse_args()
    if args.action == "versions":
        answer: dict[str, Any] = {p: importlib.metadata.version(p) for p in PACKAGES}
    elif args.action == "ingest":
        answer = ingest(args.store, args.url, args.name, args.jsonl)
    else:
        queries = json.loads(args.queries.read_text(encoding="utf-8"))
        answer = query(args.store, args.url, args.name, queries, args.warm_up)
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
