import { act, renderHook } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";

import { ApiError, type UploadOptions } from "../lib/api";
import type { UploadResult } from "../lib/types";
import { useUploads } from "./useUploads";

interface Pending {
  file: File;
  options: UploadOptions;
  resolve: (results: UploadResult[]) => void;
  reject: (error: unknown) => void;
}

function fakeUpload() {
  const pending: Pending[] = [];
  const upload = vi.fn(
    (file: File, options: UploadOptions) =>
      new Promise<UploadResult[]>((resolve, reject) => {
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
  const hook = renderHook(() => useUploads({ upload, collection: "규정", precheck: () => null, onSettled }));
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

    await act(async () => pending[0]!.resolve([result("a.txt")]));
    expect(hook.result.current.items[0]).toMatchObject({ phase: "done", results: [{ outcome: "indexed", chunks: 4 }] });
    expect(onSettled).toHaveBeenCalledTimes(1);
    expect(pending.map((p) => p.file.name)).toEqual(["a.txt", "b.md", "c.pdf"]);
  });

  it("shows the server's refusal and a failed request as results of their own file", async () => {
    const { hook, pending } = setup();
    act(() => hook.result.current.add(files("a.hwp", "b.txt")));
    await act(async () => {
      pending[0]!.resolve([result("a.hwp", "rejected")]);
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
    expect(hook.result.current.items.map((i) => [i.file.name, i.phase, i.error?.code])).toEqual([
      ["a.txt", "error", "cancelled"],
      ["b.txt", "uploading", undefined],
      ["c.txt", "error", "cancelled"],
    ]);
    expect(upload).toHaveBeenCalledTimes(2);
  });
});
