/**
 * Conversations and the streaming of answers. Lives above the pages so that an answer keeps streaming
 * (and is saved) while the user looks at another screen.
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from "react";

import { streamChat } from "../lib/api";
import { consumeStream } from "../lib/consumeStream";
import {
  loadConversations,
  newConversation,
  saveConversations,
  titleFrom,
  toHistory,
  type ChatMessage,
  type Conversation,
} from "../lib/conversations";
import { newId } from "../lib/format";
import { SEARCH_MODES, type SearchMode } from "../lib/types";
import { useStoredState } from "./useStoredState";

export interface ChatSettings {
  /** null: the server's default. */
  mode: SearchMode | null;
  topK: number | null;
}

const DEFAULT_SETTINGS: ChatSettings = { mode: null, topK: null };
const SAVE_DELAY_MS = 400;

function isSettings(value: unknown): value is ChatSettings {
  const s = value as ChatSettings | null;
  return (
    s !== null &&
    typeof s === "object" &&
    (s.mode === null || SEARCH_MODES.includes(s.mode)) &&
    (s.topK === null || (Number.isInteger(s.topK) && s.topK >= 1 && s.topK <= 50))
  );
}

interface Chat {
  conversations: Conversation[];
  active: Conversation;
  /** Id of the conversation whose answer is streaming, if any. */
  streamingId: string | null;
  settings: ChatSettings;
  setSettings: (settings: ChatSettings) => void;
  select: (id: string) => void;
  create: () => void;
  rename: (id: string, title: string) => void;
  remove: (id: string) => void;
  send: (question: string) => void;
  stop: () => void;
}

const ChatContext = createContext<Chat | null>(null);

function initialState(): { conversations: Conversation[]; activeId: string } {
  const stored = loadConversations(localStorage);
  const conversations = stored.length > 0 ? stored : [newConversation()];
  return { conversations, activeId: conversations[0]!.id };
}

export function ChatProvider({ children }: { children: ReactNode }) {
  const [initial] = useState(initialState);
  const [conversations, setConversations] = useState<Conversation[]>(initial.conversations);
  const [activeId, setActiveId] = useState<string>(initial.activeId);
  const [streamingId, setStreamingId] = useState<string | null>(null);
  const [settings, setSettings] = useStoredState("rag.chat.settings", DEFAULT_SETTINGS, isSettings);
  const controller = useRef<AbortController | null>(null);
  const latest = useRef(conversations);
  useEffect(() => {
    latest.current = conversations;
  }, [conversations]);

  // Tokens arrive many times a second; storage is written once the stream pauses, and when the page goes.
  useEffect(() => {
    const timer = window.setTimeout(() => saveConversations(localStorage, conversations), SAVE_DELAY_MS);
    return () => window.clearTimeout(timer);
  }, [conversations]);
  useEffect(() => {
    const flush = () => saveConversations(localStorage, latest.current);
    window.addEventListener("pagehide", flush);
    return () => {
      window.removeEventListener("pagehide", flush);
      flush();
    };
  }, []);

  const active = conversations.find((c) => c.id === activeId) ?? conversations[0]!;

  const updateConversation = useCallback((id: string, change: (c: Conversation) => Conversation) => {
    setConversations((list) => list.map((c) => (c.id === id ? change(c) : c)));
  }, []);

  const create = useCallback(() => {
    const current = latest.current.find((c) => c.id === activeId);
    if (current && current.messages.length === 0) return;
    const fresh = newConversation();
    setConversations((list) => [fresh, ...list]);
    setActiveId(fresh.id);
  }, [activeId]);

  const rename = useCallback(
    (id: string, title: string) => updateConversation(id, (c) => ({ ...c, title: title.trim() || c.title })),
    [updateConversation],
  );

  const remove = useCallback(
    (id: string) => {
      if (id === streamingId) controller.current?.abort();
      const rest = latest.current.filter((c) => c.id !== id);
      const next = rest.length > 0 ? rest : [newConversation()];
      setConversations(next);
      if (id === activeId) setActiveId(next[0]!.id);
    },
    [activeId, streamingId],
  );

  const send = useCallback(
    (question: string) => {
      if (streamingId !== null) return;
      const conversationId = active.id;
      const history = toHistory(active.messages);
      const answerId = newId();
      const now = Date.now();
      const asked: ChatMessage = { id: newId(), role: "user", content: question, status: "done" };
      const answer: ChatMessage = { id: answerId, role: "assistant", content: "", status: "searching" };
      setConversations((list) => {
        const target = list.find((c) => c.id === conversationId);
        if (!target) return list;
        const updated = {
          ...target,
          title: target.title || titleFrom(question),
          updatedAt: now,
          messages: [...target.messages, asked, answer],
        };
        return [updated, ...list.filter((c) => c.id !== conversationId)];
      });
      const patch = (change: (m: ChatMessage) => ChatMessage) =>
        updateConversation(conversationId, (c) => ({
          ...c,
          messages: c.messages.map((m) => (m.id === answerId ? change(m) : m)),
        }));
      const abort = new AbortController();
      controller.current = abort;
      setStreamingId(conversationId);

      const request = {
        question,
        history,
        ...(settings.mode ? { mode: settings.mode } : {}),
        ...(settings.topK ? { top_k: settings.topK } : {}),
      };
      void consumeStream(
        streamChat(request, abort.signal),
        {
          onEvent: (event) => {
            if (event.event === "sources") patch((m) => ({ ...m, sources: event.data.sources }));
            else patch((m) => ({ ...m, status: "streaming", content: m.content + event.data.text }));
          },
          onDone: ({ answer }) => patch((m) => ({ ...m, status: "done", content: answer })),
          onError: ({ status, code, message }) =>
            patch((m) => ({ ...m, status: "error", error: { status, code, message } })),
          onStopped: () => patch((m) => ({ ...m, status: "stopped" })),
        },
        "The stream ended before the answer was complete.",
      ).finally(() => {
        if (controller.current === abort) controller.current = null;
        setStreamingId(null);
      });
    },
    [active, settings, streamingId, updateConversation],
  );

  const stop = useCallback(() => controller.current?.abort(), []);

  useEffect(() => () => controller.current?.abort(), []);

  const value = useMemo<Chat>(
    () => ({
      conversations,
      active,
      streamingId,
      settings,
      setSettings,
      select: setActiveId,
      create,
      rename,
      remove,
      send,
      stop,
    }),
    [conversations, active, streamingId, settings, setSettings, create, rename, remove, send, stop],
  );
  return <ChatContext.Provider value={value}>{children}</ChatContext.Provider>;
}

export function useChat(): Chat {
  const chat = useContext(ChatContext);
  if (!chat) throw new Error("useChat must be used inside <ChatProvider>");
  return chat;
}
