/** What to set when no model can write reviews: reviews are switched off, or their model cannot be used. */
import { useI18n } from "../../i18n";
import { describeError } from "../../lib/errors";

const EXAMPLE = `REVIEW_PROVIDER=local
REVIEW_MODEL=K-intelligence/Midm-2.0-Mini-Instruct
REVIEW_ADAPTERS=reviews=/path/to/adapter`;

interface ModelGuideProps {
  /** The server runs with `REVIEW_PROVIDER=none`. */
  off?: boolean;
  /** Why the review model could not be used, when the server said so. */
  error?: unknown;
}

export function ModelGuide({ off = false, error }: ModelGuideProps) {
  const { t } = useI18n();
  const problem = error ? describeError(error, t) : null;
  return (
    <section className="card notice-card" role="status" aria-labelledby="guide-heading">
      <h2 id="guide-heading">{t("reviews.unavailableTitle")}</h2>
      {off && <p>{t("reviews.off")}</p>}
      <p>{t("reviews.unavailableBody")}</p>
      <pre className="code">
        <code>{EXAMPLE}</code>
      </pre>
      <p className="muted">{t("reviews.unavailableMore")}</p>
      {problem?.detail && (
        <p className="muted small">
          {t("reviews.serverSays")}: {problem.detail}
        </p>
      )}
    </section>
  );
}
