/**
 * Evaluate a finished job again on a data set chosen here (another dev set, or the same one after
 * the evaluation failed). The job goes back to the queue for its evaluation alone, and the page
 * follows it from the answer on.
 */
import { useMutation } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";

import { useI18n } from "../../i18n";
import { evaluateJob } from "../../lib/finetune";
import type { DatasetInfo, FinetuneJob } from "../../lib/types";
import { Button } from "../ui/Button";
import { ErrorNotice } from "../ui/Feedback";

interface EvaluateFormProps {
  job: FinetuneJob;
  datasets: DatasetInfo[];
  /** Called with the job as the server queued it again. */
  onQueued: (job: FinetuneJob) => void;
}

export function EvaluateForm({ job, datasets, onQueued }: EvaluateFormProps) {
  const { t } = useI18n();
  const [picked, setPicked] = useState<string | null>(null);
  const evaluate = useMutation({
    mutationFn: (evalDatasetId: string) => evaluateJob(job.id, { eval_dataset_id: evalDatasetId }),
    onSuccess: onQueued,
  });
  // The training data would measure what the adapter memorised, so it is not offered (as in the start form).
  const choices = datasets.filter((d) => d.id !== job.finetune.dataset_id);
  const offered = (id: string | null) => choices.some((d) => d.id === id);
  const chosen = [picked, job.finetune.eval_dataset_id].find(offered) ?? choices[0]?.id ?? null;

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (chosen) evaluate.mutate(chosen);
  };

  return (
    <section className="card" aria-labelledby="evaluate-heading">
      <h2 id="evaluate-heading">{t("finetune.evaluateTitle")}</h2>
      <p className="muted small">{t("finetune.evaluateHelp")}</p>
      {chosen === null ? (
        <p className="small">{t("finetune.evaluateNoDatasets")}</p>
      ) : (
        <form className="evaluate-form" onSubmit={submit}>
          <label className="field">
            <span className="field-label">{t("finetune.evalDataset")}</span>
            <select value={chosen} onChange={(event) => setPicked(event.target.value)}>
              {choices.map((d) => (
                <option key={d.id} value={d.id}>
                  {d.name}
                </option>
              ))}
            </select>
          </label>
          <Button type="submit" icon="refresh" disabled={evaluate.isPending}>
            {evaluate.isPending ? t("finetune.evaluateRequesting") : t("finetune.evaluate")}
          </Button>
        </form>
      )}
      {evaluate.error && <ErrorNotice error={evaluate.error} />}
    </section>
  );
}
