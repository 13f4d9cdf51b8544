/** The question box: Enter sends (not while a Korean syllable is being composed), Shift+Enter breaks the line. */
import { useState, type FormEvent, type KeyboardEvent, type ReactNode } from "react";

import { useI18n } from "../../i18n";
import { Button } from "../ui/Button";

interface ComposerProps {
  streaming: boolean;
  maxChars: number;
  onSend: (question: string) => void;
  onStop: () => void;
  /** Extra controls beside the buttons (search settings). */
  tools?: ReactNode;
}

export function Composer({ streaming, maxChars, onSend, onStop, tools }: ComposerProps) {
  const { t } = useI18n();
  const [text, setText] = useState("");
  const question = text.trim();
  const tooLong = question.length > maxChars;
  const canSend = question !== "" && !tooLong && !streaming;

  const submit = (event?: FormEvent) => {
    event?.preventDefault();
    if (!canSend) return;
    onSend(question);
    setText("");
  };

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key !== "Enter" || event.shiftKey || event.nativeEvent.isComposing) return;
    event.preventDefault();
    submit();
  };

  return (
    <form className="composer" onSubmit={submit}>
      <label htmlFor="question" className="sr-only">
        {t("chat.inputLabel")}
      </label>
      <textarea
        id="question"
        value={text}
        rows={1}
        placeholder={t("chat.placeholder")}
        aria-invalid={tooLong}
        aria-describedby={tooLong ? "question-keys question-error" : "question-keys"}
        onChange={(event) => setText(event.target.value)}
        onKeyDown={onKeyDown}
      />
      <div className="composer-bar">
        <div className="composer-tools">{tools}</div>
        <span id="question-keys" className="composer-keys">
          {t("chat.keys")}
        </span>
        {tooLong && (
          <p id="question-error" className="composer-error" role="alert">
            {t("chat.tooLong", { max: maxChars, n: question.length })}
          </p>
        )}
        {streaming ? (
          <Button variant="danger" icon="stop" onClick={onStop}>
            {t("chat.stop")}
          </Button>
        ) : (
          <Button type="submit" variant="primary" icon="send" disabled={!canSend}>
            {t("chat.send")}
          </Button>
        )}
      </div>
    </form>
  );
}
