import { act, renderHook, waitFor } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";

import { ApiError, type UploadAnswer, type UploadOptions } from "../lib/api";
import { JOBS_STORAGE_KEY, readStoredJobs, storeJob } from "../lib/jobs";
import type { JobInfo, JobStatus, UploadResult } from "../lib/types";
import { frame, installFetch, json, sse } from "../test/fakeFetch";
import { useUploads } from "./useUploads";

interface Pending {
  file: File;
  options: UploadOptions;
  resolve: (answer: UploadAnswer) => void;
  reject: (error: unknown) => void;
}

function fakeUpload() {
  const pending: Pending[] = [];
  const upload = vi.fn(
    (file: File, options: UploadOptions) =>
      new Promise<UploadAnswer>((resolve, reject) => {
        options.signal?.addEventListener("abort", () => reject(new DOMException("cancelled", "AbortError")));
        pending.push({ file, options, resolve, reject });
      }),
  );
  return { upload, pending };
}

const result = (filename: string, outcome: UploadResult["outcome"] = "indexed"): UploadResult => ({
  filename,
  document_id: outcome === "rejected" ? null : `id-${filename}`,
  outcome,
  chunks: outcome === "indexed" ? 4 : 0,
  error: outcome === "rejected" ? { code: "unsupported_type", message: "Cannot read it." } : null,
});

function setup() {
  const { upload, pending } = fakeUpload();
  const onSettled = vi.fn();
  const hook = renderHook(() =>
    useUploads({ upload, collection: "규정", precheck: () => null, onSettled, retryMs: 1 }),
  );
  return { hook, upload, pending, onSettled };
}

const files = (...names: string[]) => names.map((name) => new File(["내용"], name));

describe("useUploads", () => {
  it("sends two files at a time and starts the next when one finishes", async () => {
    const { hook, pending, onSettled } = setup();
    act(() => hook.result.current.add(files("a.txt", "b.md", "c.pdf")));
    expect(pending.map((p) => p.file.name)).toEqual(["a.txt", "b.md"]);
    expect(pending[0]!.options.collection).toBe("규정");
    expect(hook.result.current.items.map((i) => i.phase)).toEqual(["uploading", "uploading", "queued"]);

    act(() => pending[0]!.options.onProgress!(0.5));
    expect(hook.result.current.items[0]!.progress).toBe(0.5);
    act(() => pending[0]!.options.onProgress!(1));
    expect(hook.result.current.items[0]!.phase).toBe("processing");

    await act(async () => pending[0]!.resolve({ results: [result("a.txt")] }));
    expect(hook.result.current.items[0]).toMatchObject({ phase: "done", results: [{ outcome: "indexed", chunks: 4 }] });
    expect(onSettled).toHaveBeenCalledTimes(1);
    expect(pending.map((p) => p.file.name)).toEqual(["a.txt", "b.md", "c.pdf"]);
  });

  it("shows the server's refusal and a failed request as results of their own file", async () => {
    const { hook, pending } = setup();
    act(() => hook.result.current.add(files("a.hwp", "b.txt")));
    await act(async () => {
      pending[0]!.resolve({ results: [result("a.hwp", "rejected")] });
      pending[1]!.reject(new ApiError(503, "database_unavailable", "PostgreSQL is down."));
    });
    const [rejected, failed] = hook.result.current.items;
    expect(rejected).toMatchObject({
      phase: "done",
      results: [{ outcome: "rejected", error: { message: "Cannot read it." } }],
    });
    expect(failed).toMatchObject({
      phase: "error",
      error: { code: "database_unavailable", message: "PostgreSQL is down." },
    });
  });

  it("never sends a file the precheck refuses", () => {
    const { upload } = fakeUpload();
    const refuse = { code: "unsupported_type", message: "지원하지 않는 형식입니다 (.exe)" };
    const refusing = renderHook(() =>
      useUploads({ upload, collection: "", precheck: () => refuse, onSettled: vi.fn() }),
    );
    act(() => refusing.result.current.add(files("virus.exe")));
    expect(upload).not.toHaveBeenCalled();
    expect(refusing.result.current.items[0]).toMatchObject({
      phase: "done",
      results: [{ outcome: "rejected", error: refuse }],
    });
  });

  it("cancels a running upload and a queued one", async () => {
    const { hook, pending, upload } = setup();
    act(() => hook.result.current.add(files("a.txt", "b.txt", "c.txt")));
    const [running, , queued] = hook.result.current.items;
    await act(async () => hook.result.current.cancel(queued!.id));
    await act(async () => hook.result.current.cancel(running!.id));
    expect(pending[0]!.options.signal!.aborted).toBe(true);
    expect(hook.result.current.items.map((i) => [i.name, i.phase, i.error?.code])).toEqual([
      ["a.txt", "error", "cancelled"],
      ["b.txt", "uploading", undefined],
      ["c.txt", "error", "cancelled"],
    ]);
    expect(upload).toHaveBeenCalledTimes(2);
  });
});

const job = (status: JobStatus, done: number, total: number, results: UploadResult[] = []): JobInfo => ({
  id: "j1",
  kind: "ingest",
  status,
  progress: { done, total },
  results,
  error: null,
  created_at: "2025-03-01T09:00:00Z",
  updated_at: "2025-03-01T09:00:00Z",
});

describe("useUploads with background jobs", () => {
  it("follows the job a file is accepted as to its results, keeping it for a reload until then", async () => {
    const events = { release: () => {} };
    const released = new Promise<void>((resolve) => (events.release = resolve));
    const calls = installFetch({
      "GET /api/jobs/j1/events": async (request) => {
        await released;
        return sse(request, [
          frame("progress", job("running", 1, 2)),
          frame("done", job("succeeded", 2, 2, [result("a.txt")])),
        ]);
      },
    });
    const { hook, pending, onSettled } = setup();
    act(() => hook.result.current.add(files("a.txt")));
    await act(async () => pending[0]!.resolve({ jobId: "j1" }));
    expect(hook.result.current.items[0]).toMatchObject({ phase: "processing", job: { id: "j1", status: null } });
    expect(readStoredJobs()).toEqual([{ jobId: "j1", name: "a.txt", size: 6 }]);

    events.release();
    await waitFor(() => expect(hook.result.current.items[0]!.phase).toBe("done"));
    expect(hook.result.current.items[0]).toMatchObject({ results: [result("a.txt")], job: { id: "j1", done: 2 } });
    expect(onSettled).toHaveBeenCalledTimes(1);
    expect(calls.map((c) => new URL(c.url).pathname)).toEqual(["/api/jobs/j1/events"]);
    // Its end has been shown: a reload need not find it again.
    expect(localStorage.getItem(JOBS_STORAGE_KEY)).toBeNull();
  });

  it("lists and follows the jobs kept from before a reload, and those another tab starts", async () => {
    installFetch({
      "GET /api/jobs/j1/events": (request) => sse(request, [frame("progress", job("running", 3, 10))], { hold: true }),
      "GET /api/jobs/j2/events": (request) =>
        sse(request, [frame("progress", { ...job("queued", 0, 0), id: "j2" })], { hold: true }),
    });
    storeJob({ jobId: "j1", name: "사내FAQ.jsonl", size: 2048 });
    const { hook, upload } = setup();
    expect(hook.result.current.items).toMatchObject([{ name: "사내FAQ.jsonl", size: 2048, file: null }]);
    await waitFor(() => expect(hook.result.current.items[0]!.job).toMatchObject({ status: "running", done: 3 }));

    storeJob({ jobId: "j2", name: "b.md", size: 5 });
    act(() => window.dispatchEvent(new StorageEvent("storage", { key: JOBS_STORAGE_KEY })));
    await waitFor(() => expect(hook.result.current.items[1]?.job).toMatchObject({ id: "j2", status: "queued" }));
    expect(upload).not.toHaveBeenCalled();
  });

  it("drops a kept job that the server no longer knows", async () => {
    installFetch({
      "GET /api/jobs/gone": () => json({ error: { code: "job_not_found", message: "No job gone." } }, 404),
    });
    storeJob({ jobId: "gone", name: "a.md", size: 1 });
    const { hook } = setup();
    expect(hook.result.current.items).toHaveLength(1);
    await waitFor(() => expect(hook.result.current.items).toEqual([]));
    expect(localStorage.getItem(JOBS_STORAGE_KEY)).toBeNull();
  });

  it("cancels a running job on the server and shows it stopped once the job says so", async () => {
    let cancelled = false;
    const calls = installFetch({
      "GET /api/jobs/j1/events": (request) =>
        cancelled
          ? sse(request, [frame("done", job("cancelled", 1, 4, [result("a.txt")]))])
          : sse(request, [frame("progress", job("running", 1, 4))]),
      "GET /api/jobs/j1": () => json(job("running", 1, 4)),
      "POST /api/jobs/j1/cancel": () => {
        cancelled = true;
        return json(job("running", 1, 4), 202);
      },
    });
    storeJob({ jobId: "j1", name: "a.txt", size: 6 });
    const { hook } = setup();
    await waitFor(() => expect(hook.result.current.items[0]!.job?.status).toBe("running"));
    await act(async () => hook.result.current.cancel(hook.result.current.items[0]!.id));
    expect(calls.some((c) => c.method === "POST" && c.url.endsWith("/api/jobs/j1/cancel"))).toBe(true);
    await waitFor(() => expect(hook.result.current.items[0]!.phase).toBe("error"));
    expect(hook.result.current.items[0]).toMatchObject({ error: { code: "cancelled" }, results: [result("a.txt")] });
  });
});
