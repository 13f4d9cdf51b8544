/** Run a query against the index and see the ranked chunks with their scores, per retrieval mode. */
import { useQueries } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";

import { useI18n } from "../../i18n";
import { search } from "../../lib/api";
import { clampedInt, formatScore } from "../../lib/format";
import { SEARCH_MODES, type SearchMode, type SearchResult } from "../../lib/types";
import { Button } from "../ui/Button";
import { ErrorNotice, Spinner } from "../ui/Feedback";
import { Segmented } from "../ui/Segmented";

type Choice = SearchMode | "compare";

interface Submitted {
  query: string;
  modes: SearchMode[];
  topK: number;
}

function ResultItem({ result, rank, best }: { result: SearchResult; rank: number; best: number }) {
  const { t } = useI18n();
  const [open, setOpen] = useState(false);
  const title = String(result.metadata.title ?? result.metadata.source ?? result.document_id);
  // Blank lines cost a lot of height in a column of results; the passage reads the same without them.
  const text = result.text.replace(/\n\s*\n/g, "\n").trim();
  return (
    <li className="result">
      <div className="result-head">
        <span className="result-rank">{t("search.rank", { n: rank })}</span>
        <span className="result-title">{title}</span>
        <span className="result-score" title={t("search.score")}>
          {formatScore(result.score)}
        </span>
      </div>
      <div className="score-bar" aria-hidden="true">
        <div style={{ width: `${(Math.abs(result.score) / best) * 100}%` }} />
      </div>
      <p className={`result-text ${open ? "" : "is-clamped"}`}>{text}</p>
      <button type="button" className="link-button" aria-expanded={open} onClick={() => setOpen(!open)}>
        {open ? t("search.less") : t("search.more")}
      </button>
    </li>
  );
}

function ResultList({ results }: { results: SearchResult[] }) {
  const { t } = useI18n();
  const best = Math.max(...results.map((r) => Math.abs(r.score)), Number.EPSILON);
  if (results.length === 0) return <p className="muted">{t("search.none")}</p>;
  return (
    <ol className="result-list">
      {results.map((result, index) => (
        <ResultItem key={result.chunk_id} result={result} rank={index + 1} best={best} />
      ))}
    </ol>
  );
}

export function SearchPlayground() {
  const { t } = useI18n();
  const [query, setQuery] = useState("");
  const [choice, setChoice] = useState<Choice>("hybrid");
  const [topK, setTopK] = useState(5);
  const [submitted, setSubmitted] = useState<Submitted | null>(null);

  const results = useQueries({
    queries: (submitted?.modes ?? []).map((mode) => ({
      queryKey: ["search", submitted!.query, mode, submitted!.topK],
      queryFn: ({ signal }: { signal: AbortSignal }) =>
        search({ query: submitted!.query, mode, top_k: submitted!.topK }, signal),
      retry: false,
      staleTime: 0,
    })),
  });

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const text = query.trim();
    if (!text) return;
    setSubmitted({ query: text, modes: choice === "compare" ? [...SEARCH_MODES] : [choice], topK });
  };

  const options: { value: Choice; label: string }[] = [
    ...SEARCH_MODES.map((mode) => ({ value: mode, label: t(`mode.${mode}`) })),
    { value: "compare", label: t("search.compare") },
  ];

  return (
    <section className="card" aria-labelledby="search-heading">
      <h2 id="search-heading">{t("search.title")}</h2>
      <p className="muted">{t("search.help")}</p>
      <form className="search-form" onSubmit={submit} role="search">
        <label className="field search-query">
          <span className="field-label">{t("search.query")}</span>
          <input type="search" value={query} maxLength={4000} onChange={(e) => setQuery(e.target.value)} />
        </label>
        <label className="field search-k">
          <span className="field-label">{t("search.topK")}</span>
          <input
            type="number"
            min={1}
            max={50}
            value={topK}
            onChange={(e) => setTopK(clampedInt(e.target.value, 1, 50) ?? 1)}
          />
        </label>
        <Segmented label={t("search.mode")} value={choice} options={options} onChange={setChoice} />
        <Button type="submit" variant="primary" icon="search" disabled={!query.trim()}>
          {t("search.run")}
        </Button>
      </form>
      {submitted && (
        <div className={`search-columns cols-${submitted.modes.length}`}>
          {submitted.modes.map((mode, index) => {
            const outcome = results[index]!;
            return (
              <section key={mode} className="search-column" aria-label={t(`mode.${mode}`)}>
                {submitted.modes.length > 1 && <h3>{t(`mode.${mode}`)}</h3>}
                {outcome.isPending && <Spinner label={t("common.loading")} />}
                {outcome.error && <ErrorNotice error={outcome.error} />}
                {outcome.data && <ResultList results={outcome.data} />}
              </section>
            );
          })}
        </div>
      )}
    </section>
  );
}
