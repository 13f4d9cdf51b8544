/**
 * Asks for the API key when the server wants one (a 401 `auth_*` answer from any screen), and lets
 * the user change or forget the key this browser keeps. Saving refetches everything shown.
 */
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useId, useState, type FormEvent } from "react";

import { useI18n } from "../../i18n";
import { forgetApiKey, KEY_NEEDED_EVENT, readApiKey, saveApiKey, type KeyPromptReason } from "../../lib/apiKey";
import { Button } from "../ui/Button";
import { Dialog } from "../ui/Dialog";

const INTRO = {
  auth_required: "auth.needed",
  auth_invalid: "auth.rejected",
  change: "auth.change",
} as const;

export function ApiKeyDialog() {
  const { t } = useI18n();
  const queryClient = useQueryClient();
  const inputId = useId();
  const [reason, setReason] = useState<KeyPromptReason | null>(null);
  const [draft, setDraft] = useState("");

  useEffect(() => {
    const onNeeded = (event: Event) => {
      const asked = (event as CustomEvent<KeyPromptReason>).detail;
      // A dialog already open for one failed request stays as it is for the others.
      setReason((open) => open ?? asked);
      setDraft((text) => text || (asked === "change" ? (readApiKey() ?? "") : ""));
    };
    window.addEventListener(KEY_NEEDED_EVENT, onNeeded);
    return () => window.removeEventListener(KEY_NEEDED_EVENT, onNeeded);
  }, []);

  if (reason === null) return null;

  const close = () => {
    setReason(null);
    setDraft("");
  };
  const save = (event: FormEvent) => {
    event.preventDefault();
    if (!draft.trim()) return;
    saveApiKey(draft);
    close();
    void queryClient.invalidateQueries();
  };
  const forget = () => {
    forgetApiKey();
    close();
    void queryClient.invalidateQueries();
  };

  return (
    <Dialog
      title={t("auth.title")}
      onClose={close}
      actions={
        <>
          {readApiKey() !== null && (
            <Button variant="danger" icon="trash" onClick={forget}>
              {t("auth.forget")}
            </Button>
          )}
          <Button variant="primary" type="submit" form={`${inputId}-form`} disabled={!draft.trim()}>
            {t("auth.save")}
          </Button>
        </>
      }
    >
      <form id={`${inputId}-form`} className="stack" onSubmit={save}>
        <p role={reason === "change" ? undefined : "alert"}>{t(INTRO[reason])}</p>
        <label className="field">
          <span className="field-label">{t("auth.label")}</span>
          <input
            data-autofocus
            type="password"
            autoComplete="off"
            spellCheck={false}
            placeholder="rag_…"
            value={draft}
            onChange={(event) => setDraft(event.target.value)}
          />
        </label>
        <p className="muted">{t("auth.kept")}</p>
      </form>
    </Dialog>
  );
}
