/**
 * Fine-tuning: review data sets and their reports, the memory plan for a GPU, the start form, and the
 * job being watched (its curves, governor, evaluation, a new evaluation on demand and publishing). The
 * watched job is named in the URL (`?job=`) and remembered in this browser, so a reload comes back to it.
 */
import { useQuery } from "@tanstack/react-query";
import { useMemo, useState } from "react";

import { DATASETS_KEY, DatasetPanel } from "../components/Finetune/DatasetPanel";
import { EvalReport } from "../components/Finetune/EvalReport";
import { EvaluateForm } from "../components/Finetune/EvaluateForm";
import { JobList } from "../components/Finetune/JobList";
import { JobView } from "../components/Finetune/JobView";
import { MemoryPlan } from "../components/Finetune/MemoryPlan";
import { PublishForm } from "../components/Finetune/PublishForm";
import { StartForm } from "../components/Finetune/StartForm";
import { ErrorNotice, Spinner } from "../components/ui/Feedback";
import { useRouter } from "../hooks/router";
import { storedFinetuneJob, storeFinetuneJob, useFinetuneJob } from "../hooks/useFinetuneJob";
import { useI18n } from "../i18n";
import { getModels } from "../lib/api";
import { errorText } from "../lib/errors";
import { getOptions, listDatasets, listFinetuneJobs } from "../lib/finetune";
import { defaultValues, formFields, type FieldInput, type FormValues } from "../lib/finetuneForm";
import type { FinetuneJob, PlanQuery, PlanRecommendation } from "../lib/types";

const JOBS_KEY = ["finetune", "jobs"] as const;

function positiveInt(input: FieldInput | undefined): number | undefined {
  const value = Number(input);
  return Number.isInteger(value) && value > 0 ? value : undefined;
}

export function FinetunePage({ retryMs }: { retryMs?: number }) {
  const { t } = useI18n();
  const { query, navigate } = useRouter();
  const param = query.get("job");
  // `?job=` with no id asks for the start form alone, without the job remembered here.
  const jobId = param === null ? storedFinetuneJob() : param || null;
  const watched = useFinetuneJob(jobId, retryMs);
  const job = watched.job;

  const datasets = useQuery({ queryKey: DATASETS_KEY, queryFn: ({ signal }) => listDatasets(signal) });
  const options = useQuery({ queryKey: ["finetune", "options"], queryFn: ({ signal }) => getOptions(signal) });
  const jobs = useQuery({
    queryKey: [...JOBS_KEY, job?.status],
    queryFn: ({ signal }) => listFinetuneJobs(signal),
  });
  const models = useQuery({ queryKey: ["models"], queryFn: ({ signal }) => getModels(signal), retry: false });

  const fields = useMemo(() => (options.data ? formFields(options.data) : []), [options.data]);
  const [edited, setEdited] = useState<FormValues | null>(null);
  const values = edited ?? defaultValues(fields);
  const change = (key: string, value: FieldInput) => setEdited({ ...values, [key]: value });
  const apply = (recommendation: PlanRecommendation) =>
    setEdited({
      ...values,
      "train.method": recommendation.method,
      "train.micro_batch_size": String(recommendation.micro_batch),
      "train.grad_accum": String(recommendation.gradient_accumulation),
      "train.gradient_checkpointing": recommendation.gradient_checkpointing,
    });

  const [picked, setPicked] = useState<string | null>(null);
  const list = datasets.data ?? [];
  const datasetId = list.some((d) => d.id === picked) ? picked : (list[0]?.id ?? null);

  const started = (started: FinetuneJob) => {
    storeFinetuneJob(started.id);
    navigate(`/finetune?job=${encodeURIComponent(started.id)}`);
  };

  const planQuery: Omit<PlanQuery, "gpu_mem_gb"> = {
    model: String(values["train.model"] ?? ""),
    seq_len: positiveInt(values["train.max_seq_len"]),
    micro_batch: positiveInt(values["train.micro_batch_size"]),
    lora_rank: positiveInt(values["train.lora_r"]),
  };
  const reviewBase = models.data?.reviews.base_model;
  const ready = job?.status === "succeeded" && job.finetune.adapter_ready;

  return (
    <div className="page finetune-page">
      <h1 className="page-title">{t("finetune.title")}</h1>
      <p className="muted page-lead">{t("finetune.lead")}</p>

      {jobs.data && jobs.data.length > 0 && <JobList jobs={jobs.data} currentId={jobId} />}
      {jobId && !job && !watched.error && <Spinner label={t("common.loading")} />}
      {watched.error !== null && <ErrorNotice error={watched.error} />}
      {job && <JobView job={job} onChanged={watched.update} />}
      {job?.finetune.eval && <EvalReport report={job.finetune.eval} />}
      {job?.finetune.eval_error && (
        <div className="notice notice-error" role="alert">
          <strong>{t("finetune.evalFailed")}</strong>
          <p>{errorText(job.finetune.eval_error, t)}</p>
        </div>
      )}
      {job && ready && <EvaluateForm key={job.id} job={job} datasets={list} onQueued={watched.update} />}
      {job && ready && <PublishForm job={job} onPublished={() => watched.update()} />}

      <DatasetPanel datasets={list} selectedId={datasetId} onSelect={setPicked} />
      {datasets.error && <ErrorNotice error={datasets.error} />}
      <MemoryPlan query={planQuery} onApply={apply} />
      {options.isPending && <Spinner label={t("common.loading")} />}
      {options.error && <ErrorNotice error={options.error} />}
      {options.data && (
        <StartForm
          fields={fields}
          values={values}
          onChange={change}
          datasets={list}
          datasetId={datasetId}
          models={reviewBase ? [reviewBase] : []}
          onStarted={started}
        />
      )}
    </div>
  );
}
