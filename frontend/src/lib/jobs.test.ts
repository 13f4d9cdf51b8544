import { describe, expect, it } from "vitest";

import { frame, installFetch, json, sse } from "../test/fakeFetch";
import { ApiError } from "./api";
import { followJob, forgetJobs, JOBS_STORAGE_KEY, readStoredJobs, storeJob } from "./jobs";
import type { JobInfo, JobStatus } from "./types";

const job = (status: JobStatus, done: number, total: number, change: Partial<JobInfo> = {}): JobInfo => ({
  id: "j1",
  kind: "ingest",
  status,
  progress: { done, total },
  results: [],
  error: null,
  created_at: "2025-03-01T09:00:00Z",
  updated_at: "2025-03-01T09:00:01Z",
  ...change,
});

const indexed = { filename: "a.md", document_id: "d1", outcome: "indexed" as const, chunks: 4, error: null };

function follow(seen: JobInfo[]) {
  return followJob("j1", { signal: new AbortController().signal, onUpdate: (info) => seen.push(info), retryMs: 1 });
}

describe("followJob", () => {
  it("follows the event stream to the final job", async () => {
    const calls = installFetch({
      "GET /api/jobs/j1/events": (request) =>
        sse(request, [
          frame("progress", job("running", 1, 3)),
          frame("progress", job("running", 2, 3)),
          frame("done", job("succeeded", 3, 3, { results: [indexed] })),
        ]),
    });
    const seen: JobInfo[] = [];
    const final = await follow(seen);
    expect(final).toMatchObject({ status: "succeeded", results: [indexed] });
    expect(seen.map((j) => j.progress.done)).toEqual([1, 2, 3]);
    expect(calls.map((c) => new URL(c.url).pathname)).toEqual(["/api/jobs/j1/events"]);
    expect(calls[0]!.headers.get("Accept")).toBe("text/event-stream");
  });

  it("reads the job when the stream drops, then opens the stream again", async () => {
    let streams = 0;
    const calls = installFetch({
      "GET /api/jobs/j1/events": (request) => {
        streams += 1;
        return streams === 1
          ? sse(request, [frame("progress", job("running", 1, 4))])
          : sse(request, [frame("done", job("succeeded", 4, 4, { results: [indexed] }))]);
      },
      "GET /api/jobs/j1": () => json(job("running", 2, 4)),
    });
    const seen: JobInfo[] = [];
    expect(await follow(seen)).toMatchObject({ status: "succeeded" });
    expect(seen.map((j) => j.progress.done)).toEqual([1, 2, 4]);
    expect(calls.map((c) => new URL(c.url).pathname)).toEqual([
      "/api/jobs/j1/events",
      "/api/jobs/j1",
      "/api/jobs/j1/events",
    ]);
  });

  it("polls the job when its stream is refused, and waits out a server that cannot be reached", async () => {
    const answers = [
      () => json(job("queued", 0, 0)),
      () => {
        throw new TypeError("Failed to fetch");
      },
      () => json({ error: { code: "database_unavailable", message: "PostgreSQL is down." } }, 503),
      () => json(job("running", 5, 10)),
      () => json(job("failed", 5, 10, { error: { code: "indexing_failed", message: "Stopped." } })),
    ];
    const calls = installFetch({ "GET /api/jobs/j1": () => answers.shift()!() });
    const seen: JobInfo[] = [];
    expect(await follow(seen)).toMatchObject({ status: "failed", error: { code: "indexing_failed" } });
    expect(seen.map((j) => j.status)).toEqual(["queued", "running", "failed"]);
    // The first stream is refused (404: no such route); after that only the job itself is read.
    expect(calls.filter((c) => c.url.endsWith("/events"))).toHaveLength(1);
    expect(answers).toEqual([]);
  });

  it("ends with the server's 404 for a job it does not know", async () => {
    installFetch({
      "GET /api/jobs/j1": () => json({ error: { code: "job_not_found", message: "No job j1." } }, 404),
    });
    const error = await follow([]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 404, code: "job_not_found" });
  });

  it("stops when its signal is aborted", async () => {
    installFetch({
      "GET /api/jobs/j1/events": (request) => sse(request, [frame("progress", job("running", 1, 2))], { hold: true }),
    });
    const abort = new AbortController();
    const seen: JobInfo[] = [];
    const following = followJob("j1", { signal: abort.signal, onUpdate: (info) => seen.push(info) });
    await expect.poll(() => seen.length).toBe(1);
    abort.abort();
    await expect(following).rejects.toMatchObject({ name: "AbortError" });
  });
});

describe("stored jobs", () => {
  it("adds, replaces and forgets jobs, keeping what another tab stored meanwhile", () => {
    storeJob({ jobId: "j1", name: "a.md", size: 10 });
    // Another tab writes its own job between two changes made here.
    localStorage.setItem(
      JOBS_STORAGE_KEY,
      JSON.stringify([...readStoredJobs(), { jobId: "j2", name: "b.txt", size: 20 }]),
    );
    storeJob({ jobId: "j1", name: "a.md", size: 11 });
    expect(readStoredJobs()).toEqual([
      { jobId: "j2", name: "b.txt", size: 20 },
      { jobId: "j1", name: "a.md", size: 11 },
    ]);
    forgetJobs(["j1", "j2"]);
    expect(localStorage.getItem(JOBS_STORAGE_KEY)).toBeNull();
  });

  it("leaves out what it cannot read", () => {
    localStorage.setItem(JOBS_STORAGE_KEY, "{not json");
    expect(readStoredJobs()).toEqual([]);
    localStorage.setItem(
      JOBS_STORAGE_KEY,
      JSON.stringify([{ jobId: "j1", name: "a.md", size: 1 }, { jobId: 3 }, null]),
    );
    expect(readStoredJobs()).toEqual([{ jobId: "j1", name: "a.md", size: 1 }]);
  });
});
