/** A stand-in for `fetch` in component tests: routes by method and path, SSE bodies that honour abort. */
import { vi } from "vitest";

export type Handler = (request: Request) => Response | Promise<Response>;

export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

export function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * An event-stream response that sends `frames` one by one and then closes, or (with `hold`) stays
 * open until the request is aborted, as a real server connection does.
 */
export function sse(request: Request, frames: string[], { hold = false } = {}): Response {
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      request.signal.addEventListener("abort", () =>
        controller.error(new DOMException("The operation was aborted.", "AbortError")),
      );
      for (const text of frames) {
        await new Promise((resolve) => setTimeout(resolve, 1));
        if (request.signal.aborted) return;
        controller.enqueue(encoder.encode(text));
      }
      if (!hold) controller.close();
    },
  });
  return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
}

/** Replace `fetch` with routes keyed "METHOD /path"; unknown routes answer 404 like the backend. */
export function installFetch(routes: Record<string, Handler>) {
  const calls: Request[] = [];
  const fake = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(new URL(String(input), "http://localhost"), init);
    if (init?.signal?.aborted) throw new DOMException("The operation was aborted.", "AbortError");
    calls.push(request.clone());
    const url = new URL(request.url);
    const handler = routes[`${request.method} ${url.pathname}`];
    if (!handler) return json({ error: { code: "not_found", message: `No route for ${url.pathname}.` } }, 404);
    return handler(request);
  });
  vi.stubGlobal("fetch", fake);
  return calls;
}

export const STATUS = {
  version: "0.1.0",
  llm: { provider: "extractive", name: "extractive" },
  embedding: { provider: "hash", name: "hash-ko", dimension: 384 },
  database: { mode: "embedded", ok: true },
  retrieval: { mode: "hybrid", top_k: 5 },
  limits: { max_upload_mb: 50, max_files: 20, max_question_chars: 4000 },
};
