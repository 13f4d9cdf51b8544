/** The fine-tuning jobs the server knows, newest first; each opens in the job view. */
import { Link } from "../../hooks/router";
import { useI18n } from "../../i18n";
import { formatDate } from "../../lib/format";
import type { FinetuneJob } from "../../lib/types";
import { Badge } from "../ui/Feedback";
import { jobState } from "./JobView";

export function JobList({ jobs, currentId }: { jobs: FinetuneJob[]; currentId: string | null }) {
  const { t, locale } = useI18n();
  return (
    <section className="card" aria-labelledby="jobs-heading">
      <div className="card-head">
        <h2 id="jobs-heading">{t("finetune.jobsTitle")}</h2>
        {currentId && <Link to="/finetune?job=">{t("finetune.newJob")}</Link>}
      </div>
      <ul className="finetune-jobs">
        {jobs.map((job) => {
          const state = jobState(job, t, locale);
          return (
            <li key={job.id} className={job.id === currentId ? "is-selected" : ""}>
              <Link to={`/finetune?job=${encodeURIComponent(job.id)}`} aria-current={job.id === currentId || undefined}>
                {formatDate(job.created_at, locale)}
              </Link>
              <span className="muted small break">
                {job.finetune.model} · {job.finetune.method.toUpperCase()} ·{" "}
                {t("finetune.stepsOf", { done: job.progress.done, total: job.progress.total || "?" })}
              </span>
              <Badge tone={state.tone}>{state.text}</Badge>
            </li>
          );
        })}
      </ul>
    </section>
  );
}
