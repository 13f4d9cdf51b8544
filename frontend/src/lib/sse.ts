/** Server-Sent Events over `fetch`: an incremental parser and a reader for response bodies. */

export interface SSEMessage {
  event: string;
  data: string;
}

/**
 * Incremental SSE parser (the WHATWG event-stream rules the backend relies on): feed it text as it
 * arrives, in chunks of any size, and it returns the messages completed by that chunk.
 */
export class SSEParser {
  private line = "";
  private event = "";
  private data: string[] = [];
  // A chunk may end between the "\r" and "\n" of one line break; the "\n" must not end a second line.
  private skipLeadingNewline = false;

  feed(chunk: string): SSEMessage[] {
    const messages: SSEMessage[] = [];
    for (const char of chunk) {
      if (this.skipLeadingNewline) {
        this.skipLeadingNewline = false;
        if (char === "\n") continue;
      }
      if (char === "\r" || char === "\n") {
        this.skipLeadingNewline = char === "\r";
        const message = this.endLine();
        if (message) messages.push(message);
      } else {
        this.line += char;
      }
    }
    return messages;
  }

  private endLine(): SSEMessage | null {
    const line = this.line;
    this.line = "";
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    return null;
  }

  private dispatch(): SSEMessage | null {
    const message = this.data.length > 0 ? { event: this.event || "message", data: this.data.join("\n") } : null;
    this.event = "";
    this.data = [];
    return message;
  }
}

/** Yield the SSE messages of a response body as they arrive; an unterminated last message is dropped. */
export async function* readSSE(body: ReadableStream<Uint8Array>): AsyncGenerator<SSEMessage> {
  const parser = new SSEParser();
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.feed(decoder.decode(value, { stream: true }));
    }
    yield* parser.feed(decoder.decode());
  } finally {
    // Stops the download when the consumer leaves early; harmless once the stream has ended.
    reader.cancel().catch(() => undefined);
  }
}
