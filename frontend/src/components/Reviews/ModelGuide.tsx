/** What to set when no model can write reviews yet. */
import { useI18n } from "../../i18n";
import { describeError } from "../../lib/errors";

const EXAMPLE = `LLM_PROVIDER=local
LOCAL_MODEL=K-intelligence/Midm-2.0-Mini-Instruct
LORA_ADAPTERS=reviews=/path/to/adapter`;

export function ModelGuide({ error }: { error: unknown }) {
  const { t } = useI18n();
  const problem = describeError(error, t);
  return (
    <section className="card notice-card" role="status" aria-labelledby="guide-heading">
      <h2 id="guide-heading">{t("reviews.unavailableTitle")}</h2>
      <p>{t("reviews.unavailableBody")}</p>
      <pre className="code">
        <code>{EXAMPLE}</code>
      </pre>
      <p className="muted">{t("reviews.unavailableMore")}</p>
      {problem.detail && (
        <p className="muted small">
          {t("reviews.serverSays")}: {problem.detail}
        </p>
      )}
    </section>
  );
}
