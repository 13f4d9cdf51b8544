import { describe, expect, it } from "vitest";

import { frame, installFetch, json, sse } from "../test/fakeFetch";
import { ApiError, getReady, listDocuments, search, streamChat } from "./api";

async function failure(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

describe("api client", () => {
  it("reads the backend's error body into ApiError", async () => {
    installFetch({
      "POST /api/search": () => json({ error: { code: "invalid_input", message: "Empty query." } }, 422),
    });
    const error = await failure(search({ query: "x" }));
    expect(error).toMatchObject({ status: 422, code: "invalid_input", message: "Empty query." });
  });

  it("reports an answer without the error shape by its status", async () => {
    installFetch({ "GET /api/documents": () => new Response("<html>Bad gateway</html>", { status: 502 }) });
    expect(await failure(listDocuments())).toMatchObject({ status: 502, code: "http_error" });
  });

  it("turns a failed connection into network_error", async () => {
    installFetch({
      "GET /api/documents": () => {
        throw new TypeError("Failed to fetch");
      },
    });
    expect(await failure(listDocuments())).toMatchObject({ status: 0, code: "network_error" });
  });

  it("sends the collection filter as a query parameter", async () => {
    const calls = installFetch({ "GET /api/documents": () => json({ documents: [] }) });
    await listDocuments("규정 모음");
    expect(new URL(calls[0]!.url).searchParams.get("collection")).toBe("규정 모음");
  });

  it("treats a 503 from /ready as a result with its failed checks", async () => {
    const body = { status: "unavailable", checks: { database: { ok: false, detail: "connection refused" } } };
    installFetch({ "GET /ready": () => json(body, 503) });
    expect(await getReady()).toEqual(body);
  });

  it("streams chat events as typed objects", async () => {
    const calls = installFetch({
      "POST /api/chat/stream": (request) =>
        sse(request, [
          frame("sources", { sources: [] }),
          frame("token", { text: "안녕" }),
          frame("done", { answer: "안녕" }),
        ]),
    });
    const events = [];
    for await (const event of streamChat({ question: "질문" }, new AbortController().signal)) events.push(event);
    expect(events).toEqual([
      { event: "sources", data: { sources: [] } },
      { event: "token", data: { text: "안녕" } },
      { event: "done", data: { answer: "안녕" } },
    ]);
    expect(calls[0]!.headers.get("Accept")).toBe("text/event-stream");
    expect(await calls[0]!.json()).toEqual({ question: "질문" });
  });

  it("fails a stream request that the backend refuses before streaming", async () => {
    installFetch({
      "POST /api/chat/stream": () => json({ error: { code: "model_unavailable", message: "No LLM." } }, 503),
    });
    const stream = streamChat({ question: "q" }, new AbortController().signal);
    expect(await failure(stream.next())).toMatchObject({ status: 503, code: "model_unavailable" });
  });

  it("fails on an event whose data is not JSON", async () => {
    installFetch({ "POST /api/chat/stream": (request) => sse(request, ["event: token\ndata: {oops\n\n"]) });
    const stream = streamChat({ question: "q" }, new AbortController().signal);
    expect(await failure(stream.next())).toMatchObject({ code: "bad_stream" });
  });
});
