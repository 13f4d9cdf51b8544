/** The passage behind a citation, and the document it comes from. */
import { useQuery } from "@tanstack/react-query";

import { Link } from "../../hooks/router";
import { useI18n } from "../../i18n";
import { ApiError, getDocument } from "../../lib/api";
import { formatBytes, formatDate, formatScore } from "../../lib/format";
import type { Source } from "../../lib/types";
import { Dialog } from "../ui/Dialog";
import { ErrorNotice, Spinner } from "../ui/Feedback";
import { Icon } from "../ui/Icon";
import { sourceFile, sourcePlace } from "./sourcePlace";

export function SourceDialog({ source, onClose }: { source: Source; onClose: () => void }) {
  const { t, locale } = useI18n();
  // Every passage's metadata names its collection; the same id in another collection is another document.
  const collection = typeof source.metadata.collection === "string" ? source.metadata.collection : undefined;
  const document = useQuery({
    queryKey: ["document", source.document_id, collection],
    queryFn: ({ signal }) => getDocument(source.document_id, collection, signal),
    retry: false,
  });
  const missing = document.error instanceof ApiError && document.error.status === 404;

  return (
    <Dialog title={t("source.title", { n: source.number })} onClose={onClose} placement="side">
      <section className="source-section">
        <h3>{t("source.passage")}</h3>
        <blockquote className="passage">{source.text}</blockquote>
        <p className="muted small">
          {t("source.score")}: {formatScore(source.score)}
        </p>
      </section>
      <section className="source-section">
        <h3>{t("source.document")}</h3>
        <p className="doc-title">
          <Icon name="file" /> <span>{source.title || sourceFile(source)}</span>
        </p>
        <p className="muted small break source-place">{sourcePlace(source, t)}</p>
        {source.source && source.source !== sourceFile(source) && <p className="muted small break">{source.source}</p>}
        {document.isPending && <Spinner label={t("common.loading")} />}
        {missing && <p className="muted">{t("source.missing")}</p>}
        {document.error && !missing && <ErrorNotice error={document.error} />}
        {document.data && (
          <>
            <p className="muted small">
              {document.data.collection} · {t("source.chunks", { n: document.data.chunk_count })} ·{" "}
              {formatBytes(document.data.size_bytes, locale)} ·{" "}
              {t("source.added", { date: formatDate(document.data.created_at, locale) })}
            </p>
            <Link className="btn btn-secondary btn-sm" to={documentLink(source.document_id, collection)}>
              <Icon name="link" size={16} />
              {t("source.open")}
            </Link>
          </>
        )}
      </section>
    </Dialog>
  );
}

function documentLink(documentId: string, collection: string | undefined): string {
  const query = new URLSearchParams({ doc: documentId });
  if (collection) query.set("collection", collection);
  return `/documents?${query}`;
}
