import { describe, expect, it } from "vitest";

import {
  loadConversations,
  newConversation,
  saveConversations,
  STORAGE_KEY,
  titleFrom,
  toHistory,
  type ChatMessage,
} from "./conversations";

const message = (role: ChatMessage["role"], content: string, status: ChatMessage["status"] = "done"): ChatMessage => ({
  id: `${role}-${content}`,
  role,
  content,
  status,
});

describe("conversations", () => {
  it("round-trips through storage, newest first, without empty drafts", () => {
    const old = { ...newConversation(1), title: "오래된", messages: [message("user", "a")] };
    const recent = { ...newConversation(2), title: "최근", messages: [message("user", "b")] };
    saveConversations(localStorage, [old, newConversation(3), recent]);
    expect(loadConversations(localStorage).map((c) => c.title)).toEqual(["최근", "오래된"]);
  });

  it("keeps an answer that was streaming when the page closed as stopped", () => {
    const c = { ...newConversation(1), messages: [message("user", "q"), message("assistant", "부분", "streaming")] };
    saveConversations(localStorage, [c]);
    expect(loadConversations(localStorage)[0]!.messages[1]!.status).toBe("stopped");
  });

  it("starts empty when storage holds something unreadable", () => {
    localStorage.setItem(STORAGE_KEY, "{not json");
    expect(loadConversations(localStorage)).toEqual([]);
    localStorage.setItem(STORAGE_KEY, JSON.stringify([{ id: 1 }, "x"]));
    expect(loadConversations(localStorage)).toEqual([]);
  });

  it("titles a conversation with the start of its first question, on one line", () => {
    expect(titleFrom("  연차 휴가는\n며칠인가요?  ")).toBe("연차 휴가는 며칠인가요?");
    expect(titleFrom("가".repeat(60))).toBe(`${"가".repeat(39)}…`);
  });

  it("sends finished exchanges as history and leaves out failed or empty answers", () => {
    const history = toHistory([
      message("user", "q1"),
      message("assistant", "a1"),
      message("user", "q2"),
      message("assistant", "", "error"),
      message("user", "q3"),
      message("assistant", "a3 partial", "stopped"),
    ]);
    expect(history).toEqual([
      { role: "user", content: "q1" },
      { role: "assistant", content: "a1" },
      { role: "user", content: "q3" },
      { role: "assistant", content: "a3 partial" },
    ]);
  });
});
