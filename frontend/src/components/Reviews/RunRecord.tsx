/** How an adapter was trained: method, steps, final loss, when, on which data, and its evaluation when it has one. */
import { hasMessage, useI18n } from "../../i18n";
import { formatDate } from "../../lib/format";
import type { AdapterRun, EvalSummary } from "../../lib/types";

function formatNumber(value: number, locale: string): string {
  return value.toLocaleString(locale, { maximumFractionDigits: 3 });
}

/** The file name of a path the server recorded (POSIX or Windows separators). */
function baseName(path: string): string {
  return path.split(/[\\/]/).filter(Boolean).pop() ?? path;
}

// Measures the report also gives for the base model alone, shown beside the adapter's.
const BASE_OF: Record<string, string> = {
  rating_consistency: "base_rating_consistency",
  perplexity: "base_perplexity",
};
const BASE_MEASURES = new Set(Object.values(BASE_OF));

function EvalLine({ summary }: { summary: EvalSummary }) {
  const { t, locale } = useI18n();
  const show = (value: number | string) => (typeof value === "number" ? formatNumber(value, locale) : baseName(value));
  const parts = Object.entries(summary).flatMap(([metric, value]) => {
    if (BASE_MEASURES.has(metric) || (typeof value !== "number" && typeof value !== "string")) return [];
    const key = `models.metric.${metric}`;
    const label = hasMessage(key) ? t(key) : metric;
    const base = summary[BASE_OF[metric] ?? ""];
    const compared = typeof base === "number" ? ` ${t("models.versusBase", { value: show(base) })}` : "";
    return [`${label} ${show(value)}${compared}`];
  });
  return parts.length > 0 ? parts.join(" · ") : t("models.noEval");
}

export function RunRecord({ run, id }: { run: AdapterRun | null; id?: string }) {
  const { t, locale } = useI18n();
  if (!run) {
    return (
      <p id={id} className="muted small">
        {t("models.noRun")}
      </p>
    );
  }
  return (
    <dl id={id} className="run-record">
      {run.method && (
        <div>
          <dt>{t("models.method")}</dt>
          <dd>{run.method}</dd>
        </div>
      )}
      {run.steps !== null && (
        <div>
          <dt>{t("models.steps")}</dt>
          <dd>
            {run.total_steps !== null && run.total_steps !== run.steps
              ? `${run.steps.toLocaleString(locale)} / ${run.total_steps.toLocaleString(locale)}`
              : run.steps.toLocaleString(locale)}
          </dd>
        </div>
      )}
      {run.final_loss !== null && (
        <div>
          <dt>{t("models.finalLoss")}</dt>
          <dd>{formatNumber(run.final_loss, locale)}</dd>
        </div>
      )}
      <div>
        <dt>{t("models.trainedAt")}</dt>
        <dd>{run.finished_at ? formatDate(run.finished_at, locale) : t("models.unfinished")}</dd>
      </div>
      {run.data && (
        <div>
          <dt>{t("models.data")}</dt>
          <dd title={run.data}>
            {baseName(run.data)}
            {run.examples !== null && ` (${t("models.examples", { n: run.examples.toLocaleString(locale) })})`}
          </dd>
        </div>
      )}
      <div>
        <dt>{t("models.eval")}</dt>
        <dd>{run.eval ? <EvalLine summary={run.eval} /> : t("models.noEval")}</dd>
      </div>
    </dl>
  );
}
