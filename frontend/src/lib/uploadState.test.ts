import { describe, expect, it } from "vitest";

import type { JobInfo, JobStatus, UploadResult } from "./types";
import { checkFile, endOfJob, nextToStart, uploadReducer, type UploadAction, type UploadItem } from "./uploadState";

const file = (name: string, size = 10) => new File(["x".repeat(size)], name);
const indexed: UploadResult = { filename: "a.txt", document_id: "d1", outcome: "indexed", chunks: 3, error: null };

function run(actions: UploadAction[], start: UploadItem[] = []): UploadItem[] {
  return actions.reduce(uploadReducer, start);
}

function added(...names: string[]): UploadItem[] {
  return run([{ type: "add", files: names.map((name) => ({ id: name, file: file(name), rejection: null })) }]);
}

describe("uploadReducer", () => {
  it("walks a file through queued → uploading → processing → done", () => {
    let items = added("a.txt");
    expect(items[0]).toMatchObject({ phase: "queued", progress: 0, results: [] });
    items = run(
      [
        { type: "start", id: "a.txt" },
        { type: "progress", id: "a.txt", fraction: 0.4 },
      ],
      items,
    );
    expect(items[0]).toMatchObject({ phase: "uploading", progress: 0.4 });
    items = run([{ type: "sent", id: "a.txt" }], items);
    expect(items[0]).toMatchObject({ phase: "processing", progress: 1 });
    items = run([{ type: "finish", id: "a.txt", results: [indexed] }], items);
    expect(items[0]).toMatchObject({ phase: "done", results: [indexed] });
  });

  it("records a refusal found in the browser as a rejected result that is never sent", () => {
    const rejection = { code: "unsupported_type", message: "지원하지 않는 형식입니다 (.exe)" };
    const items = run([{ type: "add", files: [{ id: "x", file: file("x.exe"), rejection }] }]);
    expect(items[0]).toMatchObject({ phase: "done", results: [{ outcome: "rejected", error: rejection }] });
    expect(nextToStart(items, 2)).toEqual([]);
  });

  it("ignores events that do not fit the current phase", () => {
    const queued = added("a.txt");
    expect(run([{ type: "finish", id: "a.txt", results: [indexed] }], queued)).toEqual(queued);
    expect(run([{ type: "progress", id: "a.txt", fraction: 0.5 }], queued)).toEqual(queued);
    const done = run(
      [
        { type: "start", id: "a.txt" },
        { type: "finish", id: "a.txt", results: [indexed] },
      ],
      queued,
    );
    expect(run([{ type: "fail", id: "a.txt", error: { code: "x", message: "y" } }], done)).toEqual(done);
    expect(run([{ type: "start", id: "a.txt" }], done)).toEqual(done);
  });

  it("never moves progress backwards nor past 1", () => {
    const items = run(
      [
        { type: "start", id: "a.txt" },
        { type: "progress", id: "a.txt", fraction: 0.7 },
        { type: "progress", id: "a.txt", fraction: 0.2 },
      ],
      added("a.txt"),
    );
    expect(items[0]!.progress).toBe(0.7);
    expect(run([{ type: "progress", id: "a.txt", fraction: 3 }], items)[0]!.progress).toBe(1);
  });

  it("fails queued or running files, and clears only finished ones", () => {
    let items = run([{ type: "start", id: "a.txt" }], added("a.txt", "b.txt", "c.txt"));
    items = run(
      [
        { type: "fail", id: "a.txt", error: { code: "network_error", message: "down" } },
        { type: "fail", id: "b.txt", error: { code: "cancelled", message: "" } },
      ],
      items,
    );
    expect(items.map((i) => i.phase)).toEqual(["error", "error", "queued"]);
    expect(run([{ type: "dismiss", id: "c.txt" }], items)).toHaveLength(3);
    expect(run([{ type: "clearFinished" }], items).map((i) => i.id)).toEqual(["c.txt"]);
  });
});

const job = (status: JobStatus, done: number, total: number, change: Partial<JobInfo> = {}): JobInfo => ({
  id: "j1",
  kind: "ingest",
  status,
  progress: { done, total },
  results: [],
  error: null,
  created_at: "2025-03-01T09:00:00Z",
  updated_at: "2025-03-01T09:00:00Z",
  ...change,
});

describe("uploads indexed by jobs", () => {
  it("follows the job the server accepted the file as, to its results", () => {
    let items = run(
      [
        { type: "start", id: "a.txt" },
        { type: "accepted", id: "a.txt", jobId: "j1" },
      ],
      added("a.txt"),
    );
    expect(items[0]).toMatchObject({ phase: "processing", progress: 1, job: { id: "j1", status: null } });
    items = run([{ type: "job", id: "a.txt", job: job("running", 120, 300) }], items);
    expect(items[0]!.job).toMatchObject({ status: "running", done: 120, total: 300 });
    items = run([endOfJob("a.txt", job("succeeded", 300, 300, { results: [indexed] }))], items);
    expect(items[0]).toMatchObject({ phase: "done", results: [indexed] });
  });

  it("ends a failed or cancelled job as an error that keeps the results it got to", () => {
    const failed = job("failed", 2, 5, {
      results: [indexed],
      error: { code: "database_unavailable", message: "PostgreSQL is down." },
    });
    expect(endOfJob("a", failed)).toEqual({
      type: "fail",
      id: "a",
      error: { code: "database_unavailable", message: "PostgreSQL is down." },
      results: [indexed],
    });
    expect(endOfJob("a", job("cancelled", 1, 5))).toMatchObject({ type: "fail", error: { code: "cancelled" } });
    expect(endOfJob("a", job("succeeded", 0, 0))).toMatchObject({ type: "fail", error: { code: "indexing_failed" } });
    const items = run(
      [{ type: "start", id: "a.txt" }, { type: "accepted", id: "a.txt", jobId: "j1" }, endOfJob("a.txt", failed)],
      added("a.txt"),
    );
    expect(items[0]).toMatchObject({ phase: "error", error: { code: "database_unavailable" }, results: [indexed] });
  });

  it("marks a job being cancelled until the job says it stopped", () => {
    let items = run(
      [
        { type: "start", id: "a.txt" },
        { type: "accepted", id: "a.txt", jobId: "j1" },
        { type: "cancelling", id: "a.txt", cancelling: true },
        { type: "job", id: "a.txt", job: job("running", 1, 2) },
      ],
      added("a.txt"),
    );
    expect(items[0]!.job!.cancelling).toBe(true);
    items = run([{ type: "job", id: "a.txt", job: job("cancelled", 1, 2) }], items);
    expect(items[0]!.job!.cancelling).toBe(false);
  });

  it("restores kept jobs once each, without their files", () => {
    const kept = [
      { jobId: "j1", name: "a.md", size: 10 },
      { jobId: "j2", name: "b.txt", size: 20 },
    ];
    let items = run([{ type: "restore", jobs: kept }]);
    expect(items.map((i) => [i.name, i.size, i.file, i.phase, i.job?.id])).toEqual([
      ["a.md", 10, null, "processing", "j1"],
      ["b.txt", 20, null, "processing", "j2"],
    ]);
    items = run([{ type: "restore", jobs: [...kept, { jobId: "j3", name: "c.md", size: 5 }] }], items);
    expect(items.map((i) => i.job?.id)).toEqual(["j1", "j2", "j3"]);
    expect(run([{ type: "remove", id: items[0]!.id }], items)).toHaveLength(2);
  });

  it("does not hold a sending slot for a file whose job runs on the server", () => {
    let items = run(
      [
        { type: "start", id: "a" },
        { type: "start", id: "b" },
        { type: "accepted", id: "a", jobId: "j1" },
      ],
      added("a", "b", "c", "d"),
    );
    expect(nextToStart(items, 2).map((i) => i.id)).toEqual(["c"]);
    items = run([{ type: "restore", jobs: [{ jobId: "j9", name: "old.md", size: 1 }] }], items);
    expect(nextToStart(items, 2).map((i) => i.id)).toEqual(["c"]);
  });
});

describe("nextToStart", () => {
  it("starts queued files in order, up to the concurrency limit", () => {
    let items = added("a", "b", "c", "d");
    expect(nextToStart(items, 2).map((i) => i.id)).toEqual(["a", "b"]);
    items = run(
      [
        { type: "start", id: "a" },
        { type: "start", id: "b" },
        { type: "sent", id: "b" },
      ],
      items,
    );
    expect(nextToStart(items, 2)).toEqual([]);
    items = run([{ type: "finish", id: "a", results: [indexed] }], items);
    expect(nextToStart(items, 2).map((i) => i.id)).toEqual(["c"]);
  });
});

describe("checkFile", () => {
  it("accepts the supported types whatever the letter case", () => {
    for (const name of ["a.txt", "b.MD", "c.pdf", "d.html", "e.docx", "f.hwp", "g.hwpx", "h.jsonl", "i.csv"]) {
      expect(checkFile(file(name), 1)).toBeNull();
    }
  });

  it("refuses unknown types, empty files and files over the limit", () => {
    expect(checkFile(file("setup.exe"), 1)).toEqual({ reason: "type", ext: ".exe" });
    expect(checkFile(file("README"), 1)).toEqual({ reason: "type", ext: "README" });
    expect(checkFile(file("a.txt", 0), 1)).toEqual({ reason: "empty" });
    expect(checkFile(file("a.txt", 2 * 1024 * 1024), 1)).toEqual({ reason: "size", bytes: 2 * 1024 * 1024, maxMb: 1 });
    expect(checkFile(file("a.txt", 2 * 1024 * 1024), null)).toBeNull();
  });
});
