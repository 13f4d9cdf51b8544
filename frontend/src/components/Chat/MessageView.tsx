/** One turn of a conversation: the question, or the answer with its sources and state. */
import { useMemo } from "react";

import { useI18n } from "../../i18n";
import { ApiError } from "../../lib/api";
import { citedNumbers } from "../../lib/citations";
import type { ChatMessage } from "../../lib/conversations";
import type { Source } from "../../lib/types";
import { CopyButton } from "../ui/CopyButton";
import { Badge, ErrorNotice, Spinner } from "../ui/Feedback";
import { AnswerText } from "./AnswerText";
import { sourceFile, sourcePage, sourcePlace } from "./sourcePlace";

const NO_SOURCES: Source[] = [];

/** A source under the answer: its number, its title and page; the file in the tooltip. */
function SourceChip({ source, cited, onCite }: { source: Source; cited: boolean; onCite: (source: Source) => void }) {
  const { t } = useI18n();
  const page = sourcePage(source, t);
  const name = source.title || sourceFile(source);
  return (
    <button
      type="button"
      className={`source-chip ${cited ? "is-cited" : ""}`}
      title={sourcePlace(source, t)}
      onClick={() => onCite(source)}
    >
      <span className="source-number">{source.number}</span>
      <span className="source-name">{page ? `${name} · ${page}` : name}</span>
    </button>
  );
}

interface MessageViewProps {
  message: ChatMessage;
  onCite: (source: Source) => void;
}

export function MessageView({ message, onCite }: MessageViewProps) {
  const { t } = useI18n();
  const sources = message.sources ?? NO_SOURCES;
  const cited = useMemo(
    () => new Set(citedNumbers(message.content, new Set(sources.map((s) => s.number)))),
    [message.content, sources],
  );

  if (message.role === "user") {
    return (
      <article className="message message-user" aria-label={t("chat.you")}>
        <p>{message.content}</p>
      </article>
    );
  }

  const live = message.status === "searching" || message.status === "streaming";
  return (
    <article className="message message-assistant" aria-label={t("chat.answer")} aria-busy={live}>
      {message.status === "searching" && message.content === "" && (
        <p className="message-pending">
          <Spinner label={sources.length > 0 ? t("chat.writing") : t("chat.searching")} />
        </p>
      )}
      {message.content !== "" && (
        <AnswerText text={message.content} sources={sources} streaming={live} onCite={onCite} />
      )}
      {message.status === "error" && message.error && (
        <ErrorNotice error={new ApiError(message.error.status, message.error.code, message.error.message)} />
      )}
      {sources.length > 0 && (
        <div className="sources">
          <h3 className="sources-title">{t("chat.sources")}</h3>
          <ul className="source-chips">
            {sources.map((source) => (
              <li key={source.chunk_id}>
                <SourceChip source={source} cited={cited.has(source.number)} onCite={onCite} />
              </li>
            ))}
          </ul>
        </div>
      )}
      {message.status === "done" && sources.length === 0 && <p className="muted small">{t("chat.noSources")}</p>}
      {/* Kept in the layout while streaming (hidden), so the page does not jump when the answer ends. */}
      <div className={`message-actions ${live ? "is-hidden" : ""}`}>
        {message.status === "stopped" && <Badge tone="warning">{t("chat.stopped")}</Badge>}
        <CopyButton text={message.content} label={t("chat.copy")} />
      </div>
    </article>
  );
}
