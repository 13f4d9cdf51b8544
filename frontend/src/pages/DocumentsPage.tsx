/** Documents: upload, the table of what is indexed, and a search playground. */
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";

import { DocumentTable } from "../components/Documents/DocumentTable";
import { SearchPlayground } from "../components/Documents/SearchPlayground";
import { UploadPanel } from "../components/Documents/UploadPanel";
import { IconButton } from "../components/ui/Button";
import { ErrorNotice, Spinner } from "../components/ui/Feedback";
import { useRouter } from "../hooks/router";
import { useI18n } from "../i18n";
import { getStatus, listCollections, listDocuments } from "../lib/api";

export function DocumentsPage() {
  const { t } = useI18n();
  const { query } = useRouter();
  const [collection, setCollection] = useState("");
  const status = useQuery({ queryKey: ["status"], queryFn: ({ signal }) => getStatus(signal) });
  const collections = useQuery({ queryKey: ["collections"], queryFn: listCollections });
  const documents = useQuery({
    queryKey: ["documents", collection],
    queryFn: () => listDocuments(collection || undefined),
    // Documents still being indexed change by themselves; look again until they settle.
    refetchInterval: (q) =>
      q.state.data?.some((d) => d.status === "pending" || d.status === "indexing") ? 2000 : false,
  });
  const names = collections.data ?? [];

  return (
    <div className="page">
      <h1 className="page-title">{t("docs.title")}</h1>
      <UploadPanel limits={status.data?.limits} collections={names} />

      <section className="card" aria-labelledby="documents-heading">
        <div className="card-head">
          <h2 id="documents-heading">
            {t("docs.listTitle")}
            {documents.data && <span className="count">{t("docs.count", { n: documents.data.length })}</span>}
          </h2>
          <div className="card-tools">
            {names.length > 1 && (
              <label className="field field-inline">
                <span className="field-label">{t("docs.filter")}</span>
                <select value={collection} onChange={(event) => setCollection(event.target.value)}>
                  <option value="">{t("docs.all")}</option>
                  {names.map((name) => (
                    <option key={name} value={name}>
                      {name}
                    </option>
                  ))}
                </select>
              </label>
            )}
            <IconButton icon="refresh" label={t("common.refresh")} onClick={() => void documents.refetch()} />
          </div>
        </div>
        {documents.isPending && <Spinner label={t("common.loading")} />}
        {documents.error && <ErrorNotice error={documents.error} />}
        {documents.data?.length === 0 && <p className="muted">{t("docs.empty")}</p>}
        {documents.data && documents.data.length > 0 && (
          <DocumentTable documents={documents.data} highlightId={query.get("doc")} />
        )}
      </section>

      <SearchPlayground />
    </div>
  );
}
