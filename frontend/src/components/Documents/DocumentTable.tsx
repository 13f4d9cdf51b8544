/** The indexed documents loaded so far, with delete (after confirmation) and a button for more. */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";

import { useI18n } from "../../i18n";
import { deleteDocument } from "../../lib/api";
import { formatBytes, formatDate } from "../../lib/format";
import type { DocumentInfo, DocumentStatus } from "../../lib/types";
import { Button, IconButton } from "../ui/Button";
import { ConfirmDialog } from "../ui/ConfirmDialog";
import { Badge, ErrorNotice, type Tone } from "../ui/Feedback";

const STATUS_TONE: Record<DocumentStatus, Tone> = {
  indexing: "info",
  ready: "success",
  failed: "danger",
};

interface DocumentTableProps {
  documents: DocumentInfo[];
  /** How many of the list's documents are loaded (`documents` may hold one more: the highlighted). */
  shown: number;
  /** How many documents the whole list holds. */
  total: number;
  /** A document to point at (opened from a citation). */
  highlightId: string | null;
  /** Loads the next page; absent when every page is loaded. */
  onMore?: () => void;
  loadingMore?: boolean;
}

export function DocumentTable({
  documents,
  shown,
  total,
  highlightId,
  onMore,
  loadingMore = false,
}: DocumentTableProps) {
  const { t, locale } = useI18n();
  const queryClient = useQueryClient();
  const [confirming, setConfirming] = useState<DocumentInfo | null>(null);
  const highlighted = useRef<HTMLTableRowElement>(null);

  const remove = useMutation({
    mutationFn: (doc: DocumentInfo) => deleteDocument(doc.id, doc.collection),
    onSuccess: () => setConfirming(null),
    onSettled: () => {
      void queryClient.invalidateQueries({ queryKey: ["documents"] });
      void queryClient.invalidateQueries({ queryKey: ["collections"] });
    },
  });

  const hasHighlight = documents.some((d) => d.id === highlightId);
  useEffect(() => {
    if (hasHighlight) highlighted.current?.scrollIntoView({ block: "center" });
  }, [hasHighlight]);

  const titleOf = (doc: DocumentInfo) => doc.title || doc.source;

  return (
    <>
      <table className="doc-table">
        <thead>
          <tr>
            <th scope="col">{t("docs.colTitle")}</th>
            <th scope="col">{t("docs.colCollection")}</th>
            <th scope="col">{t("docs.colStatus")}</th>
            <th scope="col" className="num">
              {t("docs.colChunks")}
            </th>
            <th scope="col" className="num">
              {t("docs.colSize")}
            </th>
            <th scope="col">{t("docs.colDate")}</th>
            <th scope="col">
              <span className="sr-only">{t("docs.colActions")}</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {documents.map((doc) => (
            <tr
              key={doc.id}
              ref={doc.id === highlightId ? highlighted : undefined}
              className={doc.id === highlightId ? "is-highlighted" : ""}
            >
              <td data-label={t("docs.colTitle")}>
                <span className="doc-name">{titleOf(doc)}</span>
                {doc.source !== doc.title && <span className="doc-source">{doc.source}</span>}
                {doc.error && <span className="doc-error">{doc.error}</span>}
              </td>
              <td data-label={t("docs.colCollection")}>{doc.collection}</td>
              <td data-label={t("docs.colStatus")}>
                <Badge tone={STATUS_TONE[doc.status]}>{t(`docs.status.${doc.status}`)}</Badge>
              </td>
              <td data-label={t("docs.colChunks")} className="num">
                {doc.chunk_count.toLocaleString(locale)}
              </td>
              <td data-label={t("docs.colSize")} className="num">
                {formatBytes(doc.size_bytes, locale)}
              </td>
              <td data-label={t("docs.colDate")}>{formatDate(doc.created_at, locale)}</td>
              <td className="actions">
                <IconButton
                  icon="trash"
                  variant="ghost"
                  label={t("docs.deleteLabel", { title: titleOf(doc) })}
                  onClick={() => {
                    remove.reset();
                    setConfirming(doc);
                  }}
                />
              </td>
            </tr>
          ))}
        </tbody>
      </table>

      {(onMore || shown < total) && (
        <div className="doc-table-foot">
          <span className="muted">
            {t("docs.shown", { n: shown.toLocaleString(locale), total: total.toLocaleString(locale) })}
          </span>
          {onMore && (
            <Button onClick={onMore} disabled={loadingMore}>
              {loadingMore ? t("docs.loadingMore") : t("docs.more")}
            </Button>
          )}
        </div>
      )}

      {confirming && (
        <ConfirmDialog
          title={t("docs.deleteTitle")}
          onCancel={() => setConfirming(null)}
          onConfirm={() => remove.mutate(confirming)}
          busy={remove.isPending}
          confirmLabel={remove.isPending ? t("docs.deleting") : undefined}
        >
          <p>{t("docs.deleteBody", { title: titleOf(confirming), n: confirming.chunk_count })}</p>
          {remove.error && <ErrorNotice error={remove.error} />}
        </ConfirmDialog>
      )}
    </>
  );
}
