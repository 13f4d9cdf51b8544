/** Documents: upload, the table of what is indexed (a page at a time), and a search playground. */
import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { useState } from "react";

import { DocumentTable } from "../components/Documents/DocumentTable";
import { SearchPlayground } from "../components/Documents/SearchPlayground";
import { UploadPanel } from "../components/Documents/UploadPanel";
import { IconButton } from "../components/ui/Button";
import { ErrorNotice, Spinner } from "../components/ui/Feedback";
import { useRouter } from "../hooks/router";
import { useI18n } from "../i18n";
import { getDocument, getStatus, listCollections, listDocuments } from "../lib/api";
import type { DocumentInfo } from "../lib/types";

const isBusy = (doc: DocumentInfo) => doc.status === "indexing";

export function DocumentsPage() {
  const { t } = useI18n();
  const { query } = useRouter();
  const highlightId = query.get("doc");
  const highlightCollection = query.get("collection") ?? undefined;
  const [collection, setCollection] = useState("");
  const status = useQuery({ queryKey: ["status"], queryFn: ({ signal }) => getStatus(signal) });
  const collections = useQuery({ queryKey: ["collections"], queryFn: listCollections });
  const documents = useInfiniteQuery({
    queryKey: ["documents", collection],
    queryFn: ({ pageParam, signal }) => listDocuments(collection || undefined, pageParam, signal),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (page) => page.next_cursor ?? undefined,
    // Documents still being indexed change by themselves; look again until they settle.
    refetchInterval: (q) => (q.state.data?.pages.some((page) => page.documents.some(isBusy)) ? 2000 : false),
  });
  const names = collections.data ?? [];
  const pages = documents.data?.pages;
  const loaded = pages?.flatMap((page) => page.documents);
  const total = pages?.at(-1)?.total ?? 0;
  // A citation may point past the pages loaded so far: that one document is fetched and shown first.
  const highlightLoaded =
    !highlightId ||
    !loaded ||
    loaded.some((d) => d.id === highlightId && (!highlightCollection || d.collection === highlightCollection));
  const highlighted = useQuery({
    queryKey: ["documents", { highlight: highlightId, collection: highlightCollection }],
    queryFn: ({ signal }) => getDocument(highlightId!, highlightCollection, signal),
    enabled: !highlightLoaded,
  });
  const rows = loaded && !highlightLoaded && highlighted.data ? [highlighted.data, ...loaded] : loaded;

  return (
    <div className="page">
      <h1 className="page-title">{t("docs.title")}</h1>
      <UploadPanel limits={status.data?.limits} collections={names} />

      <section className="card" aria-labelledby="documents-heading">
        <div className="card-head">
          <h2 id="documents-heading">
            {t("docs.listTitle")}
            {pages && <span className="count">{t("docs.count", { n: total })}</span>}
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
        {rows?.length === 0 && <p className="muted">{t("docs.empty")}</p>}
        {rows && rows.length > 0 && (
          <DocumentTable
            documents={rows}
            shown={loaded?.length ?? 0}
            total={total}
            highlightId={highlightId}
            onMore={documents.hasNextPage ? () => void documents.fetchNextPage() : undefined}
            loadingMore={documents.isFetchingNextPage}
          />
        )}
      </section>

      <SearchPlayground />
    </div>
  );
}
