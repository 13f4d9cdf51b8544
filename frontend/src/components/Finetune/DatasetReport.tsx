/** A data set's report: reviews kept per rating as a histogram, and the lines dropped by reason. */
import { useI18n } from "../../i18n";
import { hasMessage } from "../../i18n";
import type { DataReport } from "../../lib/types";

export function DatasetReport({ report, name }: { report: DataReport; name: string }) {
  const { t, locale } = useI18n();
  const ratings = Array.from({ length: report.rating_scale }, (_, i) => String(i + 1));
  const counts = ratings.map((rating) => report.ratings[rating] ?? 0);
  const most = Math.max(1, ...counts);
  const dropped = Object.entries(report.dropped).filter(([, n]) => n > 0);
  const number = (n: number) => n.toLocaleString(locale);
  const reason = (code: string) => {
    const key = `finetune.dropped.${code}`;
    return hasMessage(key) ? t(key) : code;
  };
  return (
    <div className="dataset-report">
      <p className="small">
        {t("finetune.reportSummary", {
          format: report.data_format,
          scale: report.rating_scale,
          read: number(report.read),
          kept: number(report.kept),
        })}
      </p>
      <ol className="histogram" aria-label={t("finetune.histogramLabel", { name })}>
        {ratings.map((rating, i) => (
          <li key={rating} className="histogram-row">
            <span className="histogram-label">{t("finetune.ratingLabel", { rating })}</span>
            <span className="histogram-track" aria-hidden="true">
              <span className="histogram-bar" style={{ width: `${(100 * counts[i]!) / most}%` }} />
            </span>
            <span className="histogram-count">{number(counts[i]!)}</span>
          </li>
        ))}
      </ol>
      {dropped.length > 0 ? (
        <ul className="dropped-list small" aria-label={t("finetune.droppedLabel")}>
          {dropped.map(([code, n]) => (
            <li key={code}>
              {reason(code)}: {number(n)}
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted small">{t("finetune.noneDropped")}</p>
      )}
    </div>
  );
}
