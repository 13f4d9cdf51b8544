import { describe, expect, it } from "vitest";

import { ApiError } from "./api";
import { consumeStream } from "./consumeStream";
import type { ChatEvent } from "./types";

async function* events(list: ChatEvent[], failure?: unknown): AsyncGenerator<ChatEvent> {
  for (const event of list) yield event;
  if (failure !== undefined) throw failure;
}

function record(stream: AsyncIterable<ChatEvent>) {
  const seen: string[] = [];
  let error: ApiError | null = null;
  const done = consumeStream(
    stream,
    {
      onEvent: (event) => seen.push(event.event),
      onDone: ({ answer }) => seen.push(`done:${answer}`),
      onError: (failure) => {
        error = failure;
        seen.push("error");
      },
      onStopped: () => seen.push("stopped"),
    },
    "cut short",
  );
  return done.then(() => ({ seen, error: error as ApiError | null }));
}

describe("consumeStream", () => {
  it("passes the events in order, then the done event", async () => {
    const { seen, error } = await record(
      events([
        { event: "sources", data: { sources: [] } },
        { event: "token", data: { text: "안녕" } },
        { event: "done", data: { answer: "안녕" } },
      ]),
    );
    expect(seen).toEqual(["sources", "token", "done:안녕"]);
    expect(error).toBeNull();
  });

  it("turns the error event into an ApiError with its code, message and params", async () => {
    const body = { error: { code: "model_unavailable", message: "down", params: { provider: "openai" } } };
    const { seen, error } = await record(
      events([
        { event: "token", data: { text: "a" } },
        { event: "error", data: body },
      ]),
    );
    expect(seen).toEqual(["token", "error"]);
    expect(error).toMatchObject({
      status: 0,
      code: "model_unavailable",
      message: "down",
      params: { provider: "openai" },
    });
  });

  it("fails a stream that ends before done", async () => {
    const { seen, error } = await record(events([{ event: "token", data: { text: "a" } }]));
    expect(seen).toEqual(["token", "error"]);
    expect(error).toMatchObject({ code: "bad_stream", message: "cut short" });
  });

  it("reports an abort as stopped, not as an error", async () => {
    const { seen, error } = await record(events([], new DOMException("aborted", "AbortError")));
    expect(seen).toEqual(["stopped"]);
    expect(error).toBeNull();
  });

  it("keeps a failed request's ApiError and wraps anything else", async () => {
    const refused = new ApiError(503, "database_unavailable", "no database");
    expect((await record(events([], refused))).error).toBe(refused);
    const wrapped = (await record(events([], new TypeError("boom")))).error;
    expect(wrapped).toMatchObject({ status: 0, code: "internal_error", message: "TypeError: boom" });
  });
});
