import { describe, expect, it } from "vitest";

import { readSSE, SSEParser, type SSEMessage } from "./sse";

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      chunks.forEach((chunk) => controller.enqueue(chunk));
      controller.close();
    },
  });
}

async function collect(body: ReadableStream<Uint8Array>): Promise<SSEMessage[]> {
  const messages: SSEMessage[] = [];
  for await (const message of readSSE(body)) messages.push(message);
  return messages;
}

describe("SSEParser", () => {
  it("parses the backend's frames: event line, JSON data line, blank line", () => {
    const parser = new SSEParser();
    const frames =
      'event: sources\ndata: {"sources": []}\n\n' +
      'event: token\ndata: {"text": "안녕"}\n\n' +
      "event: done\ndata: {}\n\n";
    expect(parser.feed(frames)).toEqual([
      { event: "sources", data: '{"sources": []}' },
      { event: "token", data: '{"text": "안녕"}' },
      { event: "done", data: "{}" },
    ]);
  });

  it("completes a message only at its blank line, whatever the chunk boundaries", () => {
    const text = 'event: token\ndata: {"text": "a"}\n\nevent: token\ndata: {"text": "b"}\n\n';
    for (let size = 1; size <= 7; size += 1) {
      const parser = new SSEParser();
      const messages: SSEMessage[] = [];
      for (let i = 0; i < text.length; i += size) messages.push(...parser.feed(text.slice(i, i + size)));
      expect(messages.map((m) => m.data)).toEqual(['{"text": "a"}', '{"text": "b"}']);
    }
  });

  it("accepts CRLF and CR line ends, also when CR and LF arrive in different chunks", () => {
    const parser = new SSEParser();
    expect(parser.feed("event: a\r\ndata: 1\r")).toEqual([]);
    expect(parser.feed("\n\r\n")).toEqual([{ event: "a", data: "1" }]);
    expect(parser.feed("data: 2\r\r")).toEqual([{ event: "message", data: "2" }]);
  });

  it("joins multi-line data, skips comments and unknown fields, strips one leading space", () => {
    const parser = new SSEParser();
    const messages = parser.feed(": keep-alive\nid: 7\nretry: 10\nevent: token\ndata:  two spaces\ndata:x\n\n");
    expect(messages).toEqual([{ event: "token", data: " two spaces\nx" }]);
  });

  it("ignores blank lines that end no data, and resets the event name after each message", () => {
    const parser = new SSEParser();
    expect(parser.feed("\n\nevent: lonely\n\ndata: plain\n\n")).toEqual([{ event: "message", data: "plain" }]);
  });
});

describe("readSSE", () => {
  it("decodes UTF-8 characters split between network chunks", async () => {
    const bytes = new TextEncoder().encode('event: token\ndata: {"text": "한국어"}\n\n');
    const cut = bytes.indexOf(0xed) + 1; // inside the first Hangul syllable
    const messages = await collect(streamOf([bytes.slice(0, cut), bytes.slice(cut)]));
    expect(messages).toEqual([{ event: "token", data: '{"text": "한국어"}' }]);
  });

  it("drops a final message that never got its blank line", async () => {
    const messages = await collect(streamOf([new TextEncoder().encode("data: 1\n\ndata: 2\n")]));
    expect(messages).toEqual([{ event: "message", data: "1" }]);
  });
});
