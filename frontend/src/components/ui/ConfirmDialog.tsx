/** A confirmation before something that cannot be undone: Cancel (focused first) and a danger button. */
import type { ReactNode } from "react";

import { useI18n } from "../../i18n";
import { Button } from "./Button";
import { Dialog } from "./Dialog";

interface ConfirmDialogProps {
  title: ReactNode;
  /** What will happen, and anything to show while it does (an error). */
  children: ReactNode;
  onConfirm: () => void;
  onCancel: () => void;
  /** The confirm button's label; "Delete" unless given. */
  confirmLabel?: ReactNode;
  /** The action is under way: the confirm button waits. */
  busy?: boolean;
}

export function ConfirmDialog({
  title,
  children,
  onConfirm,
  onCancel,
  confirmLabel,
  busy = false,
}: ConfirmDialogProps) {
  const { t } = useI18n();
  return (
    <Dialog
      title={title}
      onClose={onCancel}
      actions={
        <>
          <Button data-autofocus onClick={onCancel}>
            {t("common.cancel")}
          </Button>
          <Button variant="danger" icon="trash" disabled={busy} onClick={onConfirm}>
            {confirmLabel ?? t("common.delete")}
          </Button>
        </>
      }
    >
      {children}
    </Dialog>
  );
}
