/**
 * The evaluation stored with a job: how often generated reviews land in the requested rating band
 * (per band, base / base + adapter / real reviews as grouped bars), perplexity, diversity and copying
 * as a table, and a few generated samples.
 */
import { hasMessage, useI18n } from "../../i18n";
import type { EvalReport as Report, EvalResult } from "../../lib/types";

const BANDS = ["negative", "neutral", "positive"] as const;
const SERIES = ["base", "adapter", "real"] as const;
type Series = (typeof SERIES)[number];

const WIDTH = 360;
const HEIGHT = 170;
const TOP = 16;
const BOTTOM = 22;

function percent(value: number | null | undefined): string {
  return value === null || value === undefined ? "–" : `${(100 * value).toFixed(1)}%`;
}

function ratio(value: number | null | undefined, digits = 3): string {
  return value === null || value === undefined ? "–" : value.toFixed(digits);
}

/** The band shares of one column; `per_band` is the name an older report used. */
function bandsOf(result: EvalResult): Record<string, number> {
  const consistency = result.rating_consistency as EvalResult["rating_consistency"] & {
    per_band?: Record<string, number>;
  };
  return { ...(consistency.per_band ?? {}), ...(consistency.by_band ?? {}), overall: consistency.overall };
}

export function EvalReport({ report }: { report: Report }) {
  const { t } = useI18n();
  const columns = SERIES.filter((name) => report.results[name] !== undefined);
  const shares = Object.fromEntries(columns.map((name) => [name, bandsOf(report.results[name]!)])) as Record<
    Series,
    Record<string, number>
  >;
  const groups = [...BANDS.filter((band) => columns.some((c) => shares[c][band] !== undefined)), "overall"];
  const groupWidth = WIDTH / groups.length;
  const barWidth = (groupWidth * 0.76) / columns.length;
  const plot = HEIGHT - TOP - BOTTOM;
  const label = (name: Series) => t(`finetune.series.${name}`);
  const bandName = (band: string) => {
    const key = `finetune.band.${band}`;
    return hasMessage(key) ? t(key) : band;
  };
  const summary = groups
    .map((group) => `${bandName(group)}: ${columns.map((c) => `${label(c)} ${percent(shares[c][group])}`).join(", ")}`)
    .join("; ");

  return (
    <section className="card eval-report" aria-labelledby="eval-heading">
      <h2 id="eval-heading">{t("finetune.evalTitle")}</h2>
      <p className="muted small">
        {t("finetune.evalHelp", { accuracy: percent(report.classifier.accuracy), n: report.classifier.test_size })}
      </p>
      <figure className="bar-chart">
        <figcaption className="line-chart-title">{t("finetune.consistency")}</figcaption>
        <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={summary}>
          <line className="line-chart-axis" x1={0} x2={WIDTH} y1={HEIGHT - BOTTOM} y2={HEIGHT - BOTTOM} />
          {groups.map((group, g) => (
            <g key={group}>
              {columns.map((column, c) => {
                const value = shares[column][group] ?? 0;
                const x = g * groupWidth + groupWidth * 0.12 + c * barWidth;
                const h = value * plot;
                return (
                  <g key={column}>
                    <rect
                      className={`bar bar-${column}`}
                      x={x}
                      y={HEIGHT - BOTTOM - h}
                      width={barWidth - 2}
                      height={h}
                    />
                    <text className="bar-value" x={x + barWidth / 2 - 1} y={HEIGHT - BOTTOM - h - 3}>
                      {Math.round(100 * value)}
                    </text>
                  </g>
                );
              })}
              <text className="bar-label" x={g * groupWidth + groupWidth / 2} y={HEIGHT - 6}>
                {bandName(group)}
              </text>
            </g>
          ))}
        </svg>
        <ul className="chart-legend small">
          {columns.map((column) => (
            <li key={column}>
              <span className={`swatch bar-${column}`} aria-hidden="true" />
              {label(column)}
            </li>
          ))}
        </ul>
      </figure>
      <div className="table-scroll">
        <table className="eval-table">
          <caption className="sr-only">{t("finetune.evalTableCaption")}</caption>
          <thead>
            <tr>
              <th scope="col">{t("finetune.measure")}</th>
              {columns.map((column) => (
                <th key={column} scope="col">
                  {label(column)}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            <tr>
              <th scope="row">{t("finetune.consistency")}</th>
              {columns.map((c) => (
                <td key={c}>{percent(report.results[c]!.rating_consistency.overall)}</td>
              ))}
            </tr>
            <tr>
              <th scope="row">{t("finetune.perplexity")}</th>
              {columns.map((c) => (
                <td key={c}>{ratio(report.results[c]!.perplexity, 2)}</td>
              ))}
            </tr>
            <tr>
              <th scope="row">distinct-1</th>
              {columns.map((c) => (
                <td key={c}>{ratio(report.results[c]!.distinct_1)}</td>
              ))}
            </tr>
            <tr>
              <th scope="row">distinct-2</th>
              {columns.map((c) => (
                <td key={c}>{ratio(report.results[c]!.distinct_2)}</td>
              ))}
            </tr>
            <tr>
              <th scope="row">{t("finetune.copyRate")}</th>
              {columns.map((c) => (
                <td key={c}>{percent(report.results[c]!.copy_rate)}</td>
              ))}
            </tr>
          </tbody>
        </table>
      </div>
      {columns
        .filter((c) => (report.results[c]!.samples ?? []).length > 0)
        .map((c) => (
          <div key={c} className="eval-samples">
            <h3>{t("finetune.samples", { series: label(c) })}</h3>
            <ul>
              {report.results[c]!.samples!.slice(0, 6).map((s, i) => (
                <li key={i}>
                  <span className="badge">{t("finetune.ratingLabel", { rating: s.rating })}</span>{" "}
                  <span className="muted small">{bandName(s.predicted_band)}</span>{" "}
                  <span>{s.text || t("finetune.emptySample")}</span>
                </li>
              ))}
            </ul>
          </div>
        ))}
    </section>
  );
}
