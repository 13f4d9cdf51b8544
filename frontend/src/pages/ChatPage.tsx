/** Chat: questions answered from the indexed documents, streamed, with citations to their sources. */
import { useQuery } from "@tanstack/react-query";
import { useEffect, useLayoutEffect, useRef, useState } from "react";

import { ChatSettings } from "../components/Chat/ChatSettings";
import { Composer } from "../components/Chat/Composer";
import { ConversationList } from "../components/Chat/ConversationList";
import { MessageView } from "../components/Chat/MessageView";
import { SourceDialog } from "../components/Chat/SourceDialog";
import { IconButton } from "../components/ui/Button";
import { useChat } from "../hooks/useChat";
import { useI18n } from "../i18n";
import { getStatus } from "../lib/api";
import type { Source } from "../lib/types";

// Within this many pixels of the bottom, new text keeps the view pinned to the end of the answer.
const PIN_SLACK_PX = 64;
const DEFAULT_MAX_CHARS = 4000;

export function ChatPage() {
  const { t } = useI18n();
  const chat = useChat();
  const status = useQuery({ queryKey: ["status"], queryFn: ({ signal }) => getStatus(signal) });
  const [citing, setCiting] = useState<Source | null>(null);
  const [listOpen, setListOpen] = useState(false);
  const scroller = useRef<HTMLDivElement>(null);
  const sidebar = useRef<HTMLElement>(null);
  const listToggle = useRef<HTMLButtonElement>(null);
  const pinned = useRef(true);
  const { active } = chat;
  const last = active.messages[active.messages.length - 1];

  useLayoutEffect(() => {
    pinned.current = true;
  }, [active.id]);

  useLayoutEffect(() => {
    const element = scroller.current;
    if (element && pinned.current) element.scrollTop = element.scrollHeight;
  }, [active.id, active.messages]);

  // On a phone the list is a drawer: focus goes into it when it opens, Escape closes it.
  useEffect(() => {
    if (!listOpen) return;
    sidebar.current?.querySelector<HTMLElement>("button")?.focus();
    const onKey = (event: KeyboardEvent) => {
      if (event.key !== "Escape") return;
      setListOpen(false);
      listToggle.current?.focus();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [listOpen]);

  const onScroll = () => {
    const element = scroller.current!;
    pinned.current = element.scrollHeight - element.scrollTop - element.clientHeight < PIN_SLACK_PX;
  };

  const pick = (action: () => void) => {
    action();
    setListOpen(false);
  };

  return (
    <div className="chat-layout">
      <aside ref={sidebar} className={`chat-sidebar ${listOpen ? "is-open" : ""}`} aria-label={t("chat.conversations")}>
        <ConversationList
          conversations={chat.conversations}
          activeId={active.id}
          onSelect={(id) => pick(() => chat.select(id))}
          onCreate={() => pick(chat.create)}
          onRename={chat.rename}
          onDelete={chat.remove}
        />
      </aside>
      {listOpen && <div className="chat-sidebar-backdrop" onClick={() => setListOpen(false)} />}

      <section className="chat-main" aria-labelledby="chat-heading">
        <div className="chat-toolbar">
          <IconButton
            ref={listToggle}
            icon="menu"
            className="chat-list-toggle"
            label={t("chat.openList")}
            aria-expanded={listOpen}
            onClick={() => setListOpen((open) => !open)}
          />
          <h1 id="chat-heading" className="chat-heading">
            {active.title || t("chat.untitled")}
          </h1>
        </div>

        <div className="chat-scroll" ref={scroller} onScroll={onScroll}>
          {active.messages.length === 0 ? (
            <div className="chat-empty">
              <h2>{t("chat.emptyTitle")}</h2>
              <p>{t("chat.emptyBody")}</p>
            </div>
          ) : (
            <div className="messages">
              {active.messages.map((message) => (
                <MessageView key={message.id} message={message} onCite={setCiting} />
              ))}
            </div>
          )}
        </div>
        <div className="sr-only" aria-live="polite">
          {last?.role === "assistant" && last.status === "done" ? last.content : ""}
        </div>

        <Composer
          streaming={chat.streamingId !== null}
          maxChars={status.data?.limits.max_question_chars ?? DEFAULT_MAX_CHARS}
          onSend={chat.send}
          onStop={chat.stop}
          tools={
            <ChatSettings settings={chat.settings} onChange={chat.setSettings} defaults={status.data?.retrieval} />
          }
        />
      </section>

      {citing && <SourceDialog source={citing} onClose={() => setCiting(null)} />}
    </div>
  );
}
