"""Review data sets to train on: rows of ``finetune_datasets`` and the uploaded files.

A data set is either a file uploaded to the server, kept as ``<root>/<id>/data<suffix>`` and
deleted with its row, or a file or NSMC folder named by its path on the server (for files too
large to upload), which is read where it is and never deleted. Either way it is checked
(``dataset_checks``) and read once with ``load_reviews``, as ``rag finetune train`` reads it, so
that the stored report says what training will see: reviews per rating and dropped lines by
reason. Nothing is stored for a file that fails.
"""

from __future__ import annotations

import csv
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any, BinaryIO, Literal

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from app.core.errors import Conflict, DatabaseUnavailable, InvalidInput, NotFound, RagError
from app.recipes.data import DataFormat, DataOptions, load_reviews
from app.retriever.connections import database_errors
from app.retriever.embedded_postgres import describe_conninfo
from app.tuning.dataset_checks import check_review_data, too_large, unreadable

DatasetSource = Literal["upload", "path"]
# Suffixes ``load_reviews`` tells formats by; an upload keeps the one its name has.
_KNOWN_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt")
_COLUMNS = "id, name, source, path, format, scale, report, size_bytes, created_at"
# Job states in which a training job still reads its data sets.
_ACTIVE = ("queued", "running")


@dataclass(frozen=True, slots=True)
class Dataset:
    """One stored data set; ``report`` is ``DataReport.to_dict()``."""

    id: str
    name: str
    source: DatasetSource
    path: str
    format: str
    scale: int
    report: dict[str, Any]
    size_bytes: int
    created_at: datetime


def stored_name(filename: str) -> str:
    """The name an upload is kept under: ``data`` with the suffixes that tell its format
    (``train.tsv.gz`` → ``data.tsv.gz``), so that no client-chosen name reaches the disk."""
    lowered = PurePath(filename).name.lower()
    compressed = lowered.endswith(".gz")
    base = lowered.removesuffix(".gz")
    suffix = next((s for s in _KNOWN_SUFFIXES if base.endswith(s)), "")
    return f"data{suffix}{'.gz' if compressed else ''}"


class DatasetUpload:
    """An upload being written to its data set's folder, refused once over ``max_bytes``."""

    def __init__(self, folder: Path, filename: str, max_bytes: int) -> None:
        self.id = folder.name
        self.filename = filename
        self.folder = folder
        self.path = folder / stored_name(filename)
        self.size = 0
        self._max_bytes = max_bytes
        folder.mkdir(parents=True)
        self._file: BinaryIO | None = self.path.open("xb")

    def write(self, data: bytes) -> None:
        """Append ``data``; ``TooLarge`` (``dataset_too_large``) past the limit."""
        self.size += len(data)
        if self.size > self._max_bytes:
            raise too_large(self.filename, self._max_bytes)
        assert self._file is not None, "the upload is closed"
        self._file.write(data)

    def close(self) -> None:
        """Finish writing (the file stays)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def discard(self) -> None:
        """Close and remove the folder with what was written; safe to call again."""
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class DatasetStore:
    """Data sets in one schema (the store's) and their files under ``root``; thread-safe."""

    def __init__(
        self,
        conninfo: str,
        *,
        root: Path,
        max_bytes: int,
        schema: str = "rag",
        pool_max: int = 2,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._conninfo = conninfo
        self._schema = schema
        self._where = describe_conninfo(conninfo)
        self._pool_max = pool_max
        self._connect_timeout_s = connect_timeout_s
        self._pool: ConnectionPool | None = None

    def open(self) -> None:
        """Open the pool. The table comes with the store's migrations, run before this."""
        if self._pool is not None:
            return
        pool = ConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=self._pool_max,
            kwargs={
                "connect_timeout": max(2, round(self._connect_timeout_s)),
                "application_name": "rag-datasets",
                "options": f"-c search_path={self._schema}",
            },
            check=ConnectionPool.check_connection,
            timeout=self._connect_timeout_s,
            name=f"rag-datasets-{self._schema}",
            open=False,
        )
        with database_errors(self._where, connect_timeout_s=self._connect_timeout_s):
            pool.open()
        self._pool = pool

    def close(self) -> None:
        """Close the pool; the store can be opened again."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # ----- adding ----------------------------------------------------------------------------

    def begin_upload(self, filename: str) -> DatasetUpload:
        """A new data set's folder with its file open for writing."""
        return DatasetUpload(self.root / new_dataset_id(), filename, self.max_bytes)

    def add_upload(
        self,
        upload: DatasetUpload,
        *,
        name: str,
        data_format: DataFormat = "auto",
        rating_scale: int | None = None,
    ) -> Dataset:
        """Check and read a finished upload and store it; its folder is removed if it fails."""
        upload.close()
        try:
            report = self._read(upload.path, upload.filename, data_format, rating_scale)
            return self._insert(upload.id, name, "upload", upload.path, report, upload.size)
        except BaseException:
            upload.discard()
            raise

    def add_path(
        self,
        path: Path,
        *,
        name: str | None = None,
        data_format: DataFormat = "auto",
        rating_scale: int | None = None,
    ) -> Dataset:
        """Check and read the file or NSMC folder at ``path`` on the server and store it as a
        data set that points there."""
        _check_path(path)
        size = check_review_data(path, name=path.name, max_bytes=self.max_bytes)
        report = self._load(path, path.name, data_format, rating_scale)
        return self._insert(new_dataset_id(), name or path.name, "path", path, report, size)

    # ----- reading and deleting --------------------------------------------------------------

    def list(self) -> list[Dataset]:
        """Every data set, newest first."""
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM finetune_datasets ORDER BY created_at DESC, id DESC"
            ).fetchall()
        return [Dataset(*row) for row in rows]

    def get(self, dataset_id: str) -> Dataset | None:
        """The data set, or ``None``."""
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM finetune_datasets WHERE id = %s", (dataset_id,)
            ).fetchone()
        return Dataset(*row) if row is not None else None

    def require(self, dataset_id: str) -> Dataset:
        """The data set, or ``NotFound`` (``dataset_not_found``)."""
        dataset = self.get(dataset_id)
        if dataset is None:
            raise dataset_not_found(dataset_id)
        return dataset

    def delete(self, dataset_id: str) -> None:
        """Delete the row, and an uploaded file with it; ``Conflict`` (``dataset_in_use``) while
        a queued or running training job reads the data set."""
        with self._connection() as conn, conn.transaction():
            # Locked first, so a job being created for the data set waits or sees it gone.
            row = conn.execute(
                "SELECT source, path FROM finetune_datasets WHERE id = %s FOR UPDATE",
                (dataset_id,),
            ).fetchone()
            if row is None:
                raise dataset_not_found(dataset_id)
            user = conn.execute(
                "SELECT id FROM jobs WHERE kind = 'finetune' AND status = ANY(%s)"
                " AND %s IN (payload->>'dataset_id', payload->>'eval_dataset_id')"
                " ORDER BY created_at LIMIT 1",
                (list(_ACTIVE), dataset_id),
            ).fetchone()
            if user is not None:
                raise Conflict(
                    f"Data set {dataset_id} is used by training job {user[0]}, which is queued "
                    "or running; cancel it or wait for it to end.",
                    code="dataset_in_use",
                    params={"id": dataset_id, "job_id": user[0]},
                )
            conn.execute("DELETE FROM finetune_datasets WHERE id = %s", (dataset_id,))
        source, path = row
        if source == "upload":
            folder = Path(path).parent
            # Only a folder of this store's; a path dataset's own folder is never touched.
            if folder.parent == self.root and folder.name == dataset_id:
                shutil.rmtree(folder, ignore_errors=True)

    # ----- internals -------------------------------------------------------------------------

    def _read(
        self, path: Path, name: str, data_format: DataFormat, rating_scale: int | None
    ) -> dict[str, Any]:
        check_review_data(path, name=name, max_bytes=self.max_bytes)
        return self._load(path, name, data_format, rating_scale)

    @staticmethod
    def _load(
        path: Path, name: str, data_format: DataFormat, rating_scale: int | None
    ) -> dict[str, Any]:
        """``load_reviews``'s report, its refusals as ``dataset_unreadable`` for ``name``."""
        options = DataOptions(data_format=data_format, rating_scale=rating_scale)
        try:
            _, report = load_reviews(path, options)
        except RagError as exc:
            # Its messages name the stored path; the client knows the file by its own name.
            raise unreadable(name, exc.message.replace(str(path), name)) from exc
        except csv.Error as exc:
            raise unreadable(name, f"not readable as CSV ({exc})") from exc
        except RecursionError as exc:
            raise unreadable(name, "its JSON nests too deeply") from exc
        return report.to_dict()

    def _insert(
        self,
        dataset_id: str,
        name: str,
        source: DatasetSource,
        path: Path,
        report: dict[str, Any],
        size: int,
    ) -> Dataset:
        with self._connection() as conn:
            row = conn.execute(
                "INSERT INTO finetune_datasets"
                " (id, name, source, path, format, scale, report, size_bytes)"
                f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                (
                    dataset_id,
                    name,
                    source,
                    str(path),
                    report["data_format"],
                    report["rating_scale"],
                    Jsonb(report),
                    size,
                ),
            ).fetchone()
        assert row is not None
        return Dataset(*row)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        if self._pool is None:
            raise DatabaseUnavailable("The data set store is not open.")
        with (
            database_errors(self._where, connect_timeout_s=self._connect_timeout_s),
            self._pool.connection() as conn,
        ):
            yield conn


def new_dataset_id() -> str:
    """A fresh data set id."""
    return "ds_" + uuid.uuid4().hex[:20]


def dataset_not_found(dataset_id: str) -> NotFound:
    """The error of an unknown data set id."""
    return NotFound(
        f"No data set with id {dataset_id!r}.",
        code="dataset_not_found",
        params={"id": dataset_id},
    )


def _check_path(path: Path) -> None:
    """Refuse a path that is not an absolute, existing, readable regular file or folder, saying
    which it is not."""
    if not path.is_absolute():
        raise _bad_path(path, "is not an absolute path")
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise _bad_path(path, "does not exist on the server") from None
    except OSError as exc:
        raise _bad_path(path, f"cannot be read by the server ({exc.strerror or exc})") from exc
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise _bad_path(path, "is neither a regular file nor a folder")
    kind = "folder" if stat.S_ISDIR(mode) else "file"
    wanted = os.R_OK | (os.X_OK if kind == "folder" else 0)
    if not os.access(path, wanted):
        raise _bad_path(path, f"is a {kind} the server may not read")


def _bad_path(path: Path, problem: str) -> InvalidInput:
    return InvalidInput(
        f"{path} {problem}; name a review file or an NSMC folder the server can read.",
        code="dataset_bad_path",
        params={"path": str(path)},
    )
