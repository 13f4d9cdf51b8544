/** An answer's text with its `[n]` citations turned into buttons that open the cited source. */
import { useMemo } from "react";

import { useI18n } from "../../i18n";
import { splitCitations } from "../../lib/citations";
import type { Source } from "../../lib/types";
import { sourcePlace } from "./sourcePlace";

interface AnswerTextProps {
  text: string;
  sources: Source[];
  streaming: boolean;
  onCite: (source: Source) => void;
}

export function AnswerText({ text, sources, streaming, onCite }: AnswerTextProps) {
  const { t } = useI18n();
  const byNumber = useMemo(() => new Map(sources.map((s) => [s.number, s])), [sources]);
  const known = useMemo(() => new Set(byNumber.keys()), [byNumber]);
  const segments = useMemo(() => splitCitations(text, known), [text, known]);

  return (
    <div className="answer-text">
      {segments.map((segment, index) =>
        segment.kind === "text" ? (
          <span key={index}>{segment.text}</span>
        ) : (
          <button
            key={index}
            type="button"
            className="cite"
            aria-label={t("chat.citation", { n: segment.number })}
            title={sourcePlace(byNumber.get(segment.number)!, t)}
            onClick={() => onCite(byNumber.get(segment.number)!)}
          >
            {segment.number}
          </button>
        ),
      )}
      {streaming && <span className="caret" aria-hidden="true" />}
    </div>
  );
}
