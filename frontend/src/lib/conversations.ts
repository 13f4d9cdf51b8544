/** Conversations kept in the browser: their shape, how they are stored, and what is sent as history. */
import { newId } from "./format";
import type { HistoryMessage, Source } from "./types";

export type MessageStatus = "searching" | "streaming" | "done" | "stopped" | "error";

export interface ChatMessage {
  id: string;
  role: "user" | "assistant";
  content: string;
  status: MessageStatus;
  sources?: Source[];
  error?: { status: number; code: string; message: string };
}

export interface Conversation {
  id: string;
  title: string;
  createdAt: number;
  updatedAt: number;
  messages: ChatMessage[];
}

export const STORAGE_KEY = "rag.conversations.v1";
const TITLE_CHARS = 40;
// Older turns add cost and noise; the backend accepts at most 50 messages.
const HISTORY_MESSAGES = 12;
const HISTORY_CHARS = 4000;

export function newConversation(now: number = Date.now()): Conversation {
  return { id: newId(), title: "", createdAt: now, updatedAt: now, messages: [] };
}

/** A title from the first question: its first words, on one line. */
export function titleFrom(question: string): string {
  const line = question.replace(/\s+/g, " ").trim();
  return line.length > TITLE_CHARS ? `${line.slice(0, TITLE_CHARS - 1)}…` : line;
}

function isConversation(value: unknown): value is Conversation {
  const c = value as Conversation | null;
  return (
    typeof c?.id === "string" &&
    typeof c.title === "string" &&
    typeof c.updatedAt === "number" &&
    Array.isArray(c.messages)
  );
}

/**
 * Read the stored conversations, newest first. Unreadable storage gives an empty list; an answer that
 * was streaming when the page closed is kept as stopped.
 */
export function loadConversations(storage: Storage): Conversation[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(storage.getItem(STORAGE_KEY) ?? "[]");
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  return parsed
    .filter(isConversation)
    .map((c) => ({
      ...c,
      messages: c.messages.map((m) =>
        m.status === "searching" || m.status === "streaming" ? { ...m, status: "stopped" as const } : m,
      ),
    }))
    .sort((a, b) => b.updatedAt - a.updatedAt);
}

/** Save the conversations; a full storage quota drops the oldest until they fit. */
export function saveConversations(storage: Storage, conversations: Conversation[]): void {
  let kept = conversations.filter((c) => c.messages.length > 0 || c.title !== "");
  for (;;) {
    try {
      storage.setItem(STORAGE_KEY, JSON.stringify(kept));
      return;
    } catch (error) {
      if (kept.length === 0) throw error;
      kept = kept.slice(0, -1);
    }
  }
}

/** The earlier turns to send with a new question: finished exchanges only, most recent last. */
export function toHistory(messages: ChatMessage[]): HistoryMessage[] {
  const history: HistoryMessage[] = [];
  for (let i = 0; i + 1 < messages.length; i += 1) {
    const question = messages[i]!;
    const answer = messages[i + 1]!;
    if (question.role !== "user" || answer.role !== "assistant") continue;
    if (answer.status !== "done" && answer.status !== "stopped") continue;
    if (!answer.content.trim()) continue;
    history.push(
      { role: "user", content: question.content.slice(0, HISTORY_CHARS) },
      { role: "assistant", content: answer.content.slice(0, HISTORY_CHARS) },
    );
    i += 1;
  }
  return history.slice(-HISTORY_MESSAGES);
}
