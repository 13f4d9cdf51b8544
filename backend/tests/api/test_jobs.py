"""Ingest jobs end to end: a real server, its real worker process, the real database.

A job is held at a known point by holding the store's lock on one of its documents, as a
concurrent upload of that file would: the worker waits there until the test lets go, so "while
the job runs" is a state, not a moment.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.retriever.document_versions import derive_document_id
from tests.api.conftest import make_settings
from tests.utils.documents import nsmc_reviews
from tests.utils.live_server import live_server
from tests.utils.sse import parse_sse
from tests.utils.workers import FAST_JOBS, final, jsonl, poll, wait_for_job


@dataclass
class JobsApi:
    app: FastAPI
    client: httpx.Client
    url: str

    def hold(self, collection: str, source: str) -> AbstractContextManager[None]:
        """Hold the lock that indexing ``source`` of ``collection`` waits for."""
        store = self.app.state.components.store
        return store.document_lock(derive_document_id(collection, source))

    def upload(
        self, collection: str, files: list[tuple[str, bytes]], *, wait: bool = False
    ) -> httpx.Response:
        return self.client.post(
            "/api/documents",
            params={"wait": str(wait).lower()},
            data={"collection": collection},
            files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        )

    def documents(self, collection: str) -> dict[str, str]:
        """Status of each document of ``collection`` by id."""
        listed = self.client.get("/api/documents", params={"collection": collection}).json()
        return {d["id"]: d["status"] for d in listed["documents"]}

    def sources(self, collection: str) -> dict[str, str]:
        """Status of each single-document file of ``collection`` by its name."""
        listed = self.client.get("/api/documents", params={"collection": collection}).json()
        return {d["source"]: d["status"] for d in listed["documents"]}


@pytest.fixture(scope="module")
def jobs_api(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobsApi]:
    """A server that starts one worker process of its own, as ``rag serve`` does."""
    settings = make_settings(pg_url, tmp_path_factory.mktemp("data"))
    settings = settings.model_copy(
        update={"jobs": FAST_JOBS.model_copy(update={"serve_workers": 1})}
    )
    app = create_app(settings, schema=f"jobs_{uuid.uuid4().hex[:10]}", frontend_dir=None)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield JobsApi(app, client, url)


@pytest.fixture
def collection() -> str:
    return f"c{uuid.uuid4().hex[:8]}"


def _md(text: str) -> bytes:
    return f"# 문서\n\n{text}\n".encode()


def test_an_upload_waits_for_its_job_and_answers_as_before(
    jobs_api: JobsApi, collection: str
) -> None:
    files = [("a.md", _md("펭귄은 남극에 산다.")), ("b.md", _md("낙타는 사막에 산다."))]
    response = jobs_api.upload(collection, files, wait=True)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["filename"], r["outcome"]) for r in results] == [
        ("a.md", "indexed"),
        ("b.md", "indexed"),
    ]
    job = jobs_api.client.get("/api/jobs", params={"limit": 1}).json()["jobs"][0]
    assert job["kind"] == "ingest" and job["status"] == "succeeded"
    assert job["results"] == results and job["error"] is None
    assert job["progress"] == {"done": 2, "total": 2}


def test_without_waiting_the_answer_is_202_and_the_job_runs_to_its_end(
    jobs_api: JobsApi, collection: str
) -> None:
    reviews = nsmc_reviews(40)
    files = [("reviews.jsonl", jsonl(reviews)), ("a.md", _md("고래는 바다에 산다."))]
    response = jobs_api.upload(collection, files)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    job = wait_for_job(jobs_api.client, job_id, final)
    assert job["status"] == "succeeded", job
    # Progress counts documents once the file has been read: 40 lines and one file.
    assert job["progress"] == {"done": 41, "total": 41}
    assert [r["outcome"] for r in job["results"]] == ["indexed"] * 41
    statuses = jobs_api.documents(collection)
    assert len(statuses) == 41 and set(statuses.values()) == {"ready"}


def test_events_report_progress_then_end_with_the_final_job(
    jobs_api: JobsApi, collection: str
) -> None:
    files = [("a.md", _md("사과는 빨갛다.")), ("b.md", _md("바나나는 노랗다."))]
    with jobs_api.hold(collection, "b.md"):
        job_id = jobs_api.upload(collection, files).json()["job_id"]
        wait_for_job(jobs_api.client, job_id, lambda j: len(j["results"]) == 1)
        stream = jobs_api.client.stream("GET", f"/api/jobs/{job_id}/events")
        response = stream.__enter__()
    try:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(response.iter_lines())
    finally:
        stream.__exit__(None, None, None)
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"progress"}, names
    first, last = events[0][1], events[-1][1]
    assert first["status"] == "running" and first["progress"]["done"] == 1
    assert [r["filename"] for r in first["results"]] == ["a.md"]
    assert last["status"] == "succeeded" and last["progress"] == {"done": 2, "total": 2}
    assert last == jobs_api.client.get(f"/api/jobs/{job_id}").json()
    dones = [data["progress"]["done"] for _, data in events]
    assert dones == sorted(dones)


def test_the_results_outlive_a_client_that_hung_up(jobs_api: JobsApi, collection: str) -> None:
    before = jobs_api.client.get("/api/jobs").json()["total"]
    files = [("a.md", _md("별은 밤에 빛난다.")), ("b.md", _md("해는 낮에 뜬다."))]
    impatient = httpx.Client(base_url=jobs_api.url, timeout=httpx.Timeout(60, read=1.0))
    with jobs_api.hold(collection, "b.md"), impatient, pytest.raises(httpx.ReadTimeout):
        # The job cannot end while the lock is held: the client gives up first.
        impatient.post(
            "/api/documents",
            data={"collection": collection},
            files=[("files", (name, data, "text/markdown")) for name, data in files],
        )
    listed = poll(lambda: jobs_api.client.get("/api/jobs").json(), lambda p: p["total"] > before)
    job = wait_for_job(jobs_api.client, listed["jobs"][0]["id"], final)
    assert job["status"] == "succeeded"
    assert [(r["filename"], r["outcome"]) for r in job["results"]] == [
        ("a.md", "indexed"),
        ("b.md", "indexed"),
    ]
    assert jobs_api.sources(collection) == {"a.md": "ready", "b.md": "ready"}


def test_a_cancelled_job_stops_its_work(jobs_api: JobsApi, collection: str) -> None:
    files = [("a.md", _md("하나")), ("b.md", _md("둘")), ("c.md", _md("셋"))]
    with jobs_api.hold(collection, "b.md"):
        job_id = jobs_api.upload(collection, files).json()["job_id"]
        wait_for_job(jobs_api.client, job_id, lambda j: len(j["results"]) == 1)
        asked = jobs_api.client.post(f"/api/jobs/{job_id}/cancel")
        assert asked.status_code == 200, asked.text
        # Running jobs stop at their next step; this one is waiting for the lock.
        assert asked.json()["status"] == "running"
    job = wait_for_job(jobs_api.client, job_id, final)
    assert job["status"] == "cancelled"
    done = [r["filename"] for r in job["results"]]
    assert done[0] == "a.md" and "c.md" not in done
    documents = jobs_api.sources(collection)
    assert "c.md" not in documents and "indexing" not in documents.values()
    assert documents["a.md"] == "ready"
    again = jobs_api.client.post(f"/api/jobs/{job_id}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_a_queued_job_cancelled_never_runs(jobs_api: JobsApi, collection: str) -> None:
    with jobs_api.hold(collection, "b.md"):
        first = jobs_api.upload(collection, [("b.md", _md("앞"))]).json()["job_id"]
        wait_for_job(jobs_api.client, first, lambda j: j["status"] == "running")
        # One worker, one job at a time: the second waits in the queue.
        second = jobs_api.upload(collection, [("d.md", _md("뒤"))]).json()["job_id"]
        cancelled = jobs_api.client.post(f"/api/jobs/{second}/cancel").json()
        assert cancelled["status"] == "cancelled"
    third = jobs_api.upload(collection, [("e.md", _md("다음"))]).json()["job_id"]
    # Jobs run in order: once the third has run, the second would have too.
    assert wait_for_job(jobs_api.client, third, final)["status"] == "succeeded"
    assert wait_for_job(jobs_api.client, first, final)["status"] == "succeeded"
    assert jobs_api.client.get(f"/api/jobs/{second}").json()["status"] == "cancelled"
    assert set(jobs_api.sources(collection)) == {"b.md", "e.md"}


def test_a_rejected_upload_keeps_its_status_through_the_job(
    jobs_api: JobsApi, collection: str
) -> None:
    response = jobs_api.upload(collection, [("x.exe", b"MZ\x90\x00")], wait=True)
    assert response.status_code == 415, response.text
    body = response.json()
    assert body["error"]["code"] == body["results"][0]["error"]["code"]
    assert body["results"][0]["outcome"] == "rejected"


def test_unknown_and_finished_jobs_are_errors(jobs_api: JobsApi, collection: str) -> None:
    for method, path in [
        ("GET", "/api/jobs/job_missing"),
        ("GET", "/api/jobs/job_missing/events"),
        ("POST", "/api/jobs/job_missing/cancel"),
    ]:
        response = jobs_api.client.request(method, path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "job_not_found"
    jobs_api.upload(collection, [("a.md", _md("끝"))], wait=True)
    finished = jobs_api.client.get("/api/jobs", params={"limit": 1}).json()["jobs"][0]
    refused = jobs_api.client.post(f"/api/jobs/{finished['id']}/cancel")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "job_finished"


def test_jobs_are_listed_newest_first_in_pages(jobs_api: JobsApi, collection: str) -> None:
    ids = [
        jobs_api.upload(collection, [(f"p{i}.md", _md(f"쪽 {i}"))]).json()["job_id"]
        for i in range(3)
    ]
    first = jobs_api.client.get("/api/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in first["jobs"]] == [ids[2], ids[1]]
    assert first["total"] >= 3 and first["next_cursor"]
    second = jobs_api.client.get(
        "/api/jobs", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert second["jobs"][0]["id"] == ids[0] and second["total"] == first["total"]
    bad = jobs_api.client.get("/api/jobs", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cursor"
    for job_id in ids:
        wait_for_job(jobs_api.client, job_id, final)


def test_many_waiting_uploads_at_once_each_get_their_own_results(
    jobs_api: JobsApi, collection: str
) -> None:
    answers: dict[int, httpx.Response] = {}

    def upload(i: int) -> None:
        answers[i] = jobs_api.upload(collection, [(f"m{i}.md", _md(f"동시 {i}"))], wait=True)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, response in answers.items():
        assert response.status_code == 200
        assert [r["filename"] for r in response.json()["results"]] == [f"m{i}.md"]


def test_a_stream_of_a_finished_job_is_its_final_state(jobs_api: JobsApi, collection: str) -> None:
    jobs_api.upload(collection, [("z.md", _md("마지막"))], wait=True)
    job = jobs_api.client.get("/api/jobs", params={"limit": 1}).json()["jobs"][0]
    with jobs_api.client.stream("GET", f"/api/jobs/{job['id']}/events") as response:
        events = parse_sse(response.iter_lines())
    assert events == [("done", job)]
