"""What a worker does with an ingest job: each file in turn, its results stored as it ends.

The results are those of the synchronous upload, one list per file (``filename``,
``document_id``, ``outcome``, ``chunks``, ``error``); a file the indexer refuses as a whole is
``rejected`` with the error's HTTP status kept beside it (``status``), so that an upload that
waited for its job can answer as it always did.

The payload names the ``collection`` and whether the files replace what they held before
(``replace``: documents a file no longer holds are removed; without it a file adds and updates).

Progress counts documents: a file counts as one until the indexer says how many documents it
holds. Every progress report also asks whether the job is cancelled; if it is, the report
raises ``JobCancelled`` inside the indexer, which stops and leaves the store as it was, and the
job ends ``cancelled`` with the results of the files done before.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from app.core.errors import DatabaseUnavailable, RagError, Unavailable
from app.core.logger import get_logger
from app.jobs.queue import WorkerStopping
from app.jobs.store import JobStore, LeaseLost
from app.retriever.indexer import Indexer, failure_reason
from app.retriever.types import IngestResult

log = get_logger(__name__)

KIND = "ingest"
# Progress is written at most this often (seconds); the last report of a file always is.
_REPORT_EVERY_S = 0.25


class JobCancelled(Exception):
    """Raised inside the indexer when the job it works for was cancelled."""


def rejected_result(filename: str, error: RagError) -> dict[str, Any]:
    """The result of a file refused as a whole, with the status an upload answers it with."""
    return {
        "filename": filename,
        "document_id": None,
        "outcome": "rejected",
        "chunks": 0,
        "error": error_json(error),
        "status": error.status_code,
    }


def error_json(error: RagError) -> dict[str, Any]:
    """An error as the API shows it (``code``, ``message``, ``params``) plus its HTTP status."""
    return {
        "code": error.code,
        "message": error.message,
        "params": dict(error.params),
        "status": error.status_code,
    }


def _document_result(filename: str, outcome: IngestResult) -> dict[str, Any]:
    # dict(code=...): the web UI's list of error codes is read from calls.
    error = dict(code="indexing_failed", message=outcome.error) if outcome.error else None
    return {
        "filename": filename,
        "document_id": outcome.document_id,
        "outcome": outcome.outcome,
        "chunks": outcome.chunks,
        "error": error,
    }


class IngestRunner:
    """Runs ingest jobs with one indexer; ``stopping`` set makes a running job hand itself back."""

    def __init__(self, jobs: JobStore, indexer: Indexer, stopping: threading.Event) -> None:
        self._jobs = jobs
        self._indexer = indexer
        self._stopping = stopping

    def run(self, job_id: str) -> None:
        """Run (or, after a takeover, resume) job ``job_id`` to its end."""
        claimed = self._jobs.claim(job_id)
        if claimed is None:
            return
        job, lease = claimed
        pending = self._jobs.pending_files(job_id)
        log.info("job %s: running (%d files to do)", job_id, len(pending))
        collection = job.payload.get("collection")
        replace = bool(job.payload.get("replace", False))
        done, total = job.progress["done"], job.progress["total"]
        try:
            for position in pending:
                self._check(job_id, lease, done, total)
                results, units = self._ingest(
                    job_id, lease, position, collection, replace, done, total
                )
                done, total = done + units, total + units - 1
                self._jobs.settle_file(job_id, lease, position, results, done, total)
            self._jobs.finish(job_id, lease, "succeeded")
        except LeaseLost:
            log.warning("job %s: another worker took it over; this run stops", job_id)
        except JobCancelled:
            log.info("job %s: cancelled", job_id)
            self._jobs.finish(job_id, lease, "cancelled")
        except WorkerStopping:
            log.info("job %s: handed back, the worker is stopping", job_id)
            self._jobs.release(job_id, lease)
            raise
        except DatabaseUnavailable:
            # The queue runs the job again later; the files done so far stay done.
            raise
        except Unavailable as exc:
            self._jobs.finish(job_id, lease, "failed", error_json(exc))
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self._jobs.finish(
                job_id,
                lease,
                "failed",
                # dict(code=...): the web UI's list of error codes is read from calls.
                dict(code="internal_error", message=failure_reason(exc), status=500),
            )
        else:
            log.info("job %s: succeeded", job_id)

    def _check(self, job_id: str, lease: str, done: int, total: int) -> None:
        if self._stopping.is_set():
            raise WorkerStopping(job_id)
        if self._jobs.report(job_id, lease, done, total):
            raise JobCancelled(job_id)

    def _ingest(
        self,
        job_id: str,
        lease: str,
        position: int,
        collection: str | None,
        replace: bool,
        done: int,
        total: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """The file's results and how many documents it counts for in the progress."""
        file = self._jobs.file(job_id, position)
        if file.data is None:
            assert file.result is not None
            return [file.result], 1
        documents: int | None = None
        reported = 0.0

        def on_documents(documents_done: int, documents_total: int) -> None:
            nonlocal documents, reported
            documents = documents_total
            now = time.monotonic()
            if documents_done < documents_total and now - reported < _REPORT_EVERY_S:
                return
            reported = now
            self._check(job_id, lease, done + documents_done, total - 1 + documents_total)

        try:
            outcomes = self._indexer.ingest_bytes(
                file.filename,
                file.data,
                collection=collection,
                progress=on_documents,
                replace=replace,
            )
        except (Unavailable, JobCancelled, WorkerStopping, LeaseLost):
            raise
        except RagError as exc:
            return [rejected_result(file.filename, exc)], 1
        # A bug in a loader or below: this file failed, the others of the job go on.
        except Exception as exc:
            log.exception("job %s: indexing %s failed", job_id, file.filename)
            outcomes = [IngestResult(None, file.filename, "failed", error=failure_reason(exc))]
        results = [_document_result(file.filename, outcome) for outcome in outcomes]
        if documents is None:
            documents = max(1, sum(r["outcome"] != "removed" for r in results))
        return results, documents
