/**
 * One fine-tuning job as it runs: steps done and the ETA, what the load governor is doing, the loss
 * and throughput curves, and the buttons that pause, resume or cancel it.
 */
import { useMutation } from "@tanstack/react-query";

import { useI18n, type Translate } from "../../i18n";
import { errorText } from "../../lib/errors";
import { controlJob, isFinetuneJob, type JobAction } from "../../lib/finetune";
import { formatDate } from "../../lib/format";
import { isFinalStatus } from "../../lib/jobs";
import type { FinetuneJob } from "../../lib/types";
import { Button } from "../ui/Button";
import { Badge, ErrorNotice, ProgressBar, type Tone } from "../ui/Feedback";
import { LineChart } from "./LineChart";

export function formatDuration(seconds: number, t: Translate): string {
  const whole = Math.max(0, Math.round(seconds));
  const [h, m, s] = [Math.floor(whole / 3600), Math.floor((whole % 3600) / 60), whole % 60];
  if (h > 0) return t("finetune.durationHm", { h, m });
  if (m > 0) return t("finetune.durationMs", { m, s });
  return t("finetune.durationS", { s });
}

/** The job's state in words, with the tone of its badge. */
export function jobState(job: FinetuneJob, t: Translate, locale: string): { text: string; tone: Tone } {
  switch (job.status) {
    case "succeeded":
      return { text: t("finetune.state.succeeded"), tone: "success" };
    case "failed":
      return { text: t("finetune.state.failed"), tone: "danger" };
    case "cancelled":
      return { text: t("finetune.state.cancelled"), tone: "neutral" };
    case "queued":
      return {
        text: t(job.pause_requested ? "finetune.state.pausedQueued" : "finetune.state.queued"),
        tone: "neutral",
      };
  }
  const governor = job.governor;
  if (governor?.state === "paused") {
    const reason = governor.reason ?? "user";
    const until = governor.resumes_at
      ? t("finetune.state.until", { time: formatDate(governor.resumes_at, locale) })
      : "";
    return { text: `${t(`finetune.paused.${reason}`)}${until}`, tone: "warning" };
  }
  if (job.pause_requested) return { text: t("finetune.state.pausing"), tone: "warning" };
  return {
    text: t(job.finetune.phase === "evaluating" ? "finetune.state.evaluating" : "finetune.state.training"),
    tone: "info",
  };
}

interface JobViewProps {
  job: FinetuneJob;
  /** Called with the job as an action left it. */
  onChanged: (job: FinetuneJob | null) => void;
}

export function JobView({ job, onChanged }: JobViewProps) {
  const { t, locale } = useI18n();
  const action = useMutation({
    mutationFn: (name: JobAction) => controlJob(job.id, name),
    onSuccess: (answer) => onChanged(isFinetuneJob(answer) ? answer : null),
  });
  const final = isFinalStatus(job.status);
  const state = jobState(job, t, locale);
  const { done, total } = job.progress;
  const pausedByUser = job.pause_requested || (job.governor?.state === "paused" && job.governor.reason === "user");
  const loss = job.metrics.map((m) => ({ x: m.step, y: m.loss }));
  const speed = job.metrics
    .filter((m) => typeof m.tokens_per_s === "number")
    .map((m) => ({ x: m.step, y: m.tokens_per_s! }));
  const number = (digits: number) => (value: number) =>
    value.toLocaleString(locale, { maximumFractionDigits: digits, minimumFractionDigits: digits });

  return (
    <section className="card job-view" aria-labelledby="job-heading">
      <div className="card-head">
        <h2 id="job-heading">{t("finetune.jobTitle")}</h2>
        <span role="status" aria-live="polite">
          <Badge tone={state.tone}>{state.text}</Badge>
        </span>
      </div>
      <dl className="job-facts">
        <div>
          <dt>{t("finetune.field.model")}</dt>
          <dd className="break">{job.finetune.model}</dd>
        </div>
        <div>
          <dt>{t("finetune.field.method")}</dt>
          <dd>{job.finetune.method.toUpperCase()}</dd>
        </div>
        <div>
          <dt>{t("finetune.steps")}</dt>
          <dd data-testid="job-steps">{t("finetune.stepsOf", { done, total: total || "?" })}</dd>
        </div>
        <div>
          <dt>{t("finetune.eta")}</dt>
          <dd>{!final && job.eta_s !== null ? formatDuration(job.eta_s, t) : "–"}</dd>
        </div>
      </dl>
      <ProgressBar value={total > 0 ? done / total : 0} label={t("finetune.progressLabel")} />
      <div className="job-charts">
        <LineChart
          title={t("finetune.loss")}
          points={loss}
          format={number(3)}
          xLabel={t("finetune.step")}
          empty={t("finetune.noMetrics")}
        />
        <LineChart
          title={t("finetune.tokensPerS")}
          points={speed}
          format={number(0)}
          xLabel={t("finetune.step")}
          empty={t("finetune.noMetrics")}
        />
      </div>
      {job.error && (
        <div className="notice notice-error" role="alert">
          <strong>{t("finetune.jobFailed")}</strong>
          <p>{errorText(job.error, t)}</p>
        </div>
      )}
      {!final && (
        <div className="job-actions">
          {pausedByUser ? (
            <Button icon="send" disabled={action.isPending} onClick={() => action.mutate("resume")}>
              {t("finetune.resume")}
            </Button>
          ) : (
            <Button icon="stop" disabled={action.isPending} onClick={() => action.mutate("pause")}>
              {t("finetune.pause")}
            </Button>
          )}
          <Button variant="danger" icon="close" disabled={action.isPending} onClick={() => action.mutate("cancel")}>
            {t("finetune.cancel")}
          </Button>
        </div>
      )}
      {action.error && <ErrorNotice error={action.error} />}
    </section>
  );
}
