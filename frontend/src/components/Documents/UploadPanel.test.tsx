import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { JOBS_STORAGE_KEY, readStoredJobs, storeJob } from "../../lib/jobs";
import type { JobInfo, JobStatus, UploadResult } from "../../lib/types";
import { frame, installFetch, json, STATUS, type Handler } from "../../test/fakeFetch";
import { installXhr } from "../../test/fakeXhr";
import { renderApp } from "../../test/render";

const result = (id: string, chunks = 4): UploadResult => ({
  filename: "사내FAQ.jsonl",
  document_id: id,
  outcome: "indexed",
  chunks,
  error: null,
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

/** A job's event stream that the test writes to while the page reads it. */
function liveEvents() {
  const encoder = new TextEncoder();
  const queued: string[] = [];
  let stream: ReadableStreamDefaultController<Uint8Array> | null = null;
  const handler: Handler = (request) => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        stream = controller;
        request.signal.addEventListener("abort", () =>
          controller.error(new DOMException("The operation was aborted.", "AbortError")),
        );
        for (const text of queued.splice(0)) controller.enqueue(encoder.encode(text));
      },
    });
    return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
  };
  const send = (event: string, data: JobInfo) => {
    const text = frame(event, data);
    if (stream) stream.enqueue(encoder.encode(text));
    else queued.push(text);
  };
  return { handler, send };
}

function backend(routes: Record<string, Handler>) {
  return installFetch({
    "GET /health": () => json({ status: "ok" }),
    "GET /api/status": () => json(STATUS),
    "GET /api/collections": () => json({ collections: ["default"] }),
    "GET /api/documents": () => json({ documents: [] }),
    ...routes,
  });
}

const uploads = () => screen.getByRole("list", { name: "올리기 진행 상황" });

describe("upload panel with background jobs", () => {
  it("after a reload, shows a running job's progress, then its results", async () => {
    const events = liveEvents();
    backend({ "GET /api/jobs/j1/events": events.handler });
    storeJob({ jobId: "j1", name: "사내FAQ.jsonl", size: 2048 });
    events.send("progress", job("running", 3, 10));
    const { user } = renderApp("/documents");

    const bar = await screen.findByRole("progressbar", { name: "‘사내FAQ.jsonl’ 색인 진행률" });
    expect(bar).toHaveAttribute("aria-valuenow", "30");
    const row = within(uploads()).getByRole("listitem");
    expect(row).toHaveTextContent("사내FAQ.jsonl");
    expect(row).toHaveTextContent("2 KB");
    expect(row).toHaveTextContent("색인 중 · 문서 3/10");
    expect(within(row).getByRole("button", { name: "‘사내FAQ.jsonl’ 올리기 취소" })).toBeInTheDocument();
    expect(screen.getByText("파일 1개 중 0개 끝남")).toBeInTheDocument();

    events.send("progress", job("running", 7, 10));
    await waitFor(() => expect(bar).toHaveAttribute("aria-valuenow", "70"));
    events.send("done", job("succeeded", 10, 10, { results: [result("a", 2), result("b", 1), result("c", 3)] }));
    await within(row).findByText("문서 3개 · 색인 3");
    expect(screen.queryByRole("progressbar")).not.toBeInTheDocument();
    expect(screen.getByText("파일 1개 중 1개 끝남")).toBeInTheDocument();
    expect(localStorage.getItem(JOBS_STORAGE_KEY)).toBeNull();

    await user.click(within(row).getByRole("button", { name: "‘사내FAQ.jsonl’ 목록에서 지우기" }));
    expect(screen.queryByRole("list", { name: "올리기 진행 상황" })).not.toBeInTheDocument();
  });

  it("cancels a running job from the keyboard and shows what it stored before it stopped", async () => {
    const events = liveEvents();
    const calls = backend({
      "GET /api/jobs/j1/events": events.handler,
      "POST /api/jobs/j1/cancel": () => json(job("running", 1, 3), 202),
    });
    storeJob({ jobId: "j1", name: "사내FAQ.jsonl", size: 2048 });
    events.send("progress", job("running", 1, 3));
    const { user } = renderApp("/documents");
    const cancel = await screen.findByRole("button", { name: "‘사내FAQ.jsonl’ 올리기 취소" });
    await screen.findByRole("progressbar", { name: "‘사내FAQ.jsonl’ 색인 진행률" });

    cancel.focus();
    await user.keyboard("{Enter}");
    const row = within(uploads()).getByRole("listitem");
    await within(row).findByText("취소하는 중…");
    expect(calls.filter((c) => c.method === "POST").map((c) => new URL(c.url).pathname)).toEqual([
      "/api/jobs/j1/cancel",
    ]);

    events.send("done", job("cancelled", 1, 3, { results: [result("a", 4)] }));
    await within(row).findByText("취소됨");
    expect(row).toHaveTextContent("색인됨 · 청크 4개");
    expect(within(row).queryByRole("alert")).not.toBeInTheDocument();
  });

  it("shows why a job failed, with the documents it stored", async () => {
    const events = liveEvents();
    backend({ "GET /api/jobs/j1/events": events.handler });
    storeJob({ jobId: "j1", name: "사내FAQ.jsonl", size: 2048 });
    events.send(
      "done",
      job("failed", 1, 3, {
        results: [result("a", 4)],
        error: { code: "database_unavailable", message: "PostgreSQL is down." },
      }),
    );
    renderApp("/documents");
    const row = await within(await screen.findByRole("list", { name: "올리기 진행 상황" })).findByRole("listitem");
    await within(row).findByText("오류");
    expect(row).toHaveTextContent("색인됨 · 청크 4개");
    const alert = within(row).getByRole("alert");
    expect(alert).toHaveTextContent("데이터베이스에 연결할 수 없습니다");
    expect(alert).not.toHaveTextContent("PostgreSQL is down.");
    expect(within(row).getByRole("button", { name: "‘사내FAQ.jsonl’ 목록에서 지우기" })).toBeInTheDocument();
  });

  it("uploads a dropped file as a job and keeps it for a reload while it runs", async () => {
    const events = liveEvents();
    backend({ "GET /api/jobs/j7/events": events.handler });
    const sent = installXhr(() => ({ status: 202, body: { job_id: "j7" } }));
    renderApp("/documents");
    await screen.findByText("아직 문서가 없습니다. 위에서 파일을 올려 보세요.");
    fireEvent.drop(screen.getByTestId("dropzone"), { dataTransfer: { files: [new File(["# 휴가"], "휴가.md")] } });

    await waitFor(() => expect(readStoredJobs()).toEqual([{ jobId: "j7", name: "휴가.md", size: 8 }]));
    expect(sent.map((s) => [s.method, s.url])).toEqual([["POST", "/api/documents?wait=false"]]);
    expect((sent[0]!.body.get("files") as File).name).toBe("휴가.md");
    const row = within(uploads()).getByRole("listitem");
    await within(row).findByText("색인 중…");

    events.send("progress", { ...job("queued", 0, 0), id: "j7" });
    await within(row).findByText("색인 차례를 기다리는 중");
    events.send("done", {
      ...job("succeeded", 1, 1, { results: [{ ...result("d1", 5), filename: "휴가.md" }] }),
      id: "j7",
    });
    await within(row).findByText("색인됨 · 청크 5개");
    expect(readStoredJobs()).toEqual([]);
  });

  it("takes the results at once from a backend that answers the upload itself", async () => {
    const calls = backend({});
    installXhr(() => ({ status: 200, body: { results: [{ ...result("d1", 5), filename: "휴가.md" }] } }));
    renderApp("/documents");
    await screen.findByText("아직 문서가 없습니다. 위에서 파일을 올려 보세요.");
    fireEvent.drop(screen.getByTestId("dropzone"), { dataTransfer: { files: [new File(["# 휴가"], "휴가.md")] } });

    await within(uploads()).findByText("색인됨 · 청크 5개");
    expect(readStoredJobs()).toEqual([]);
    expect(calls.some((c) => c.url.includes("/api/jobs"))).toBe(false);
  });
});
