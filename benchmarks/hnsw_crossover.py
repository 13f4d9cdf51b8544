"""Where rebuilding the HNSW index beats inserting into it: the figures behind RETRIEVAL_BULK_LOAD_CHUNKS.

For each number of stored vectors and of new ones (hash vectors of NSMC reviews, 768-d), a
fresh table holds the stored ones under a built HNSW index; then the new ones are COPYed

- ``live``: into the table with the index in place (each row inserted into the graph);
- ``rebuild``: with the index dropped, and the index built again over all rows, CONCURRENTLY,
  as a bulk load does.

Each way is timed in wall-clock seconds and in CPU seconds of the PostgreSQL server (all its
processes, parallel build workers included), which moves far less than wall time when the
machine is shared.

    .venv/bin/python benchmarks/hnsw_crossover.py [--stored 0,2000,20000] [--new 25,50,250,1000,4000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from app.models.hash import HashEmbedder
from app.retriever.embedded_postgres import EmbeddedPostgres
from ingest_profile import cpu_seconds, postmaster, write_nsmc_jsonl

_INDEX = "CREATE INDEX {how} i ON t USING hnsw (embedding vector_cosine_ops)"


def copy_vectors(conn: psycopg.Connection, vectors: np.ndarray) -> None:
    with (
        conn.cursor() as cur,
        cur.copy("COPY t (embedding) FROM STDIN WITH (FORMAT BINARY)") as copy,
    ):
        copy.set_types(["vector"])
        for vector in vectors:
            copy.write_row((vector,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stored", default="0,2000,20000", help="comma-separated counts"
    )
    parser.add_argument(
        "--new", default="25,50,250,1000,4000", help="comma-separated counts"
    )
    args = parser.parse_args()
    stored = [int(s) for s in args.stored.split(",")]
    added = [int(s) for s in args.new.split(",")]
    with tempfile.TemporaryDirectory(prefix="rag-bench-hnsw-") as folder:
        data_dir = Path(folder)
        reviews = data_dir / "reviews.jsonl"
        write_nsmc_jsonl(reviews, max(stored) + max(added))
        texts = [json.loads(line)["text"] for line in reviews.open(encoding="utf-8")]
        vectors = HashEmbedder().embed_array(texts)
        server = EmbeddedPostgres(data_dir / "pg")
        url = server.start()
        try:
            database = postmaster(data_dir / "pg")
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                register_vector(conn)
                conn.execute("SET maintenance_work_mem = '1GB'")

                def measure(step: Callable[[], None]) -> tuple[float, float]:
                    cpu, start = cpu_seconds(database), time.perf_counter()
                    step()
                    return time.perf_counter() - start, cpu_seconds(database) - cpu

                print("| chunks stored | new chunks | way | wall s | server CPU s |")
                print("|---:|---:|---|---:|---:|")
                for count in stored:
                    for new in added:
                        for way in ("live", "rebuild"):
                            conn.execute("DROP TABLE IF EXISTS t")
                            conn.execute(
                                "CREATE TABLE t (id bigserial PRIMARY KEY, embedding vector(768))"
                            )
                            copy_vectors(conn, vectors[:count])
                            conn.execute(_INDEX.format(how=""))
                            conn.execute("VACUUM ANALYZE t")
                            rows = vectors[count : count + new]

                            def rebuild(rows: np.ndarray = rows) -> None:
                                conn.execute("DROP INDEX CONCURRENTLY i")
                                copy_vectors(conn, rows)
                                conn.execute(_INDEX.format(how="CONCURRENTLY"))

                            step = (
                                rebuild
                                if way == "rebuild"
                                else lambda r=rows: copy_vectors(conn, r)
                            )
                            wall, cpu = measure(step)
                            print(
                                f"| {count:,} | {new:,} | {way} | {wall:.2f} | {cpu:.2f} |",
                                flush=True,
                            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
