/** Saved conversations: pick one, start a new one, rename or delete. */
import { useState, type FormEvent } from "react";

import { useI18n } from "../../i18n";
import type { Conversation } from "../../lib/conversations";
import { Button, IconButton } from "../ui/Button";
import { ConfirmDialog } from "../ui/ConfirmDialog";
import { Dialog } from "../ui/Dialog";

interface ConversationListProps {
  conversations: Conversation[];
  activeId: string;
  onSelect: (id: string) => void;
  onCreate: () => void;
  onRename: (id: string, title: string) => void;
  onDelete: (id: string) => void;
}

export function ConversationList({
  conversations,
  activeId,
  onSelect,
  onCreate,
  onRename,
  onDelete,
}: ConversationListProps) {
  const { t } = useI18n();
  const [renaming, setRenaming] = useState<Conversation | null>(null);
  const [deleting, setDeleting] = useState<Conversation | null>(null);
  const [draft, setDraft] = useState("");
  const visible = conversations.filter((c) => c.messages.length > 0 || c.id === activeId);
  const titleOf = (c: Conversation) => c.title || t("chat.untitled");

  const saveRename = (event: FormEvent) => {
    event.preventDefault();
    if (renaming) onRename(renaming.id, draft);
    setRenaming(null);
  };

  return (
    <div className="conversations">
      <Button variant="primary" icon="plus" className="conversations-new" onClick={onCreate}>
        {t("chat.new")}
      </Button>
      <h2 className="sr-only">{t("chat.conversations")}</h2>
      {visible.length === 0 && <p className="muted small">{t("chat.noConversations")}</p>}
      <ul className="conversation-items">
        {visible.map((c) => (
          <li key={c.id} className={c.id === activeId ? "is-active" : ""}>
            <button
              type="button"
              className="conversation-select"
              aria-current={c.id === activeId ? "true" : undefined}
              onClick={() => onSelect(c.id)}
            >
              {titleOf(c)}
            </button>
            <span className="conversation-actions">
              <IconButton
                icon="edit"
                label={`${t("chat.rename")}: ${titleOf(c)}`}
                onClick={() => {
                  setDraft(c.title);
                  setRenaming(c);
                }}
              />
              <IconButton icon="trash" label={`${t("chat.delete")}: ${titleOf(c)}`} onClick={() => setDeleting(c)} />
            </span>
          </li>
        ))}
      </ul>

      {renaming && (
        <Dialog title={t("chat.renameTitle")} onClose={() => setRenaming(null)}>
          <form onSubmit={saveRename} className="stack">
            <label className="field">
              <span className="field-label">{t("chat.renameLabel")}</span>
              <input data-autofocus value={draft} maxLength={80} onChange={(e) => setDraft(e.target.value)} />
            </label>
            <div className="dialog-actions-inline">
              <Button onClick={() => setRenaming(null)}>{t("common.cancel")}</Button>
              <Button type="submit" variant="primary">
                {t("common.save")}
              </Button>
            </div>
          </form>
        </Dialog>
      )}
      {deleting && (
        <ConfirmDialog
          title={t("chat.deleteTitle")}
          onCancel={() => setDeleting(null)}
          onConfirm={() => {
            onDelete(deleting.id);
            setDeleting(null);
          }}
        >
          <p>{t("chat.deleteBody", { title: titleOf(deleting) })}</p>
        </ConfirmDialog>
      )}
    </div>
  );
}
