/** The fine-tuning routes of the API client (`lib/api.ts` sends every request and reads every error). */
import { ApiError, errorFrom, getJson, NETWORK_ERROR, postJson, send } from "./api";
import { authHeaders } from "./apiKey";
import type {
  AdapterInfo,
  DatasetInfo,
  DatasetPathRequest,
  EvaluateJobRequest,
  FinetuneJob,
  FinetuneJobRequest,
  JobInfo,
  JobList,
  MemoryPlan,
  PlanQuery,
  RecipeOptions,
} from "./types";

export function isFinetuneJob(job: JobInfo): job is FinetuneJob {
  return job.kind === "finetune" && typeof (job as FinetuneJob).finetune === "object";
}

export async function listDatasets(signal?: AbortSignal): Promise<DatasetInfo[]> {
  const body = await getJson<{ datasets: DatasetInfo[] }>("/api/finetune/datasets", signal);
  return body.datasets;
}

/**
 * Upload a review file (any format `rag finetune train` reads); the answer holds its report.
 * XMLHttpRequest rather than fetch because only it reports upload progress, which a file of
 * hundreds of megabytes needs.
 */
export function uploadDataset(
  file: File,
  { signal, onProgress }: { signal?: AbortSignal; onProgress?: (fraction: number) => void } = {},
): Promise<DatasetInfo> {
  const form = new FormData();
  form.append("file", file, file.name);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/finetune/datasets");
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.responseType = "text";
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress?.(event.loaded / event.total);
    };
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // A proxy's HTML error page: reported below by its status alone.
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) resolve(body as DatasetInfo);
      else reject(errorFrom(xhr.status, body));
    };
    xhr.onerror = () => reject(new ApiError(0, NETWORK_ERROR, "The server could not be reached."));
    xhr.onabort = () => reject(new DOMException("Upload cancelled.", "AbortError"));
    signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(form);
  });
}

/** A data set from a file or folder already on the server (for files too large to upload). */
export function addDatasetPath(request: DatasetPathRequest): Promise<DatasetInfo> {
  return postJson("/api/finetune/datasets", request);
}

/** Delete a data set; 409 `dataset_in_use` while a queued or running job trains on it. */
export async function deleteDataset(id: string): Promise<void> {
  await send(`/api/finetune/datasets/${encodeURIComponent(id)}`, { method: "DELETE" });
}

export function getPlan(query: PlanQuery, signal?: AbortSignal): Promise<MemoryPlan> {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) if (value !== undefined) params.set(name, String(value));
  return getJson(`/api/finetune/plan?${params}`, signal);
}

export function getOptions(signal?: AbortSignal): Promise<RecipeOptions> {
  return getJson("/api/finetune/options", signal);
}

export function startFinetune(request: FinetuneJobRequest): Promise<FinetuneJob> {
  return postJson("/api/finetune/jobs", request);
}

/**
 * Evaluate a job that succeeded again, without training again. The answer is the job back in the
 * queue, in phase `evaluating` and without its old report; 409 `job_not_finished` unless it succeeded.
 */
export function evaluateJob(id: string, request: EvaluateJobRequest): Promise<FinetuneJob> {
  return postJson(`/api/finetune/jobs/${encodeURIComponent(id)}/evaluate`, request);
}

/** The fine-tuning jobs on the newest page of `GET /api/jobs`, newest first. */
export async function listFinetuneJobs(signal?: AbortSignal): Promise<FinetuneJob[]> {
  const body = await getJson<JobList>("/api/jobs?limit=100", signal);
  return body.jobs.filter(isFinetuneJob);
}

export type JobAction = "pause" | "resume" | "cancel";

/** Pause, resume or cancel a job; the answer is the job as it is now (its events say when it obeyed). */
export function controlJob(id: string, action: JobAction): Promise<JobInfo> {
  return postJson(`/api/jobs/${encodeURIComponent(id)}/${action}`, {});
}

/** Serve the finished job's adapter to the review writer under `name`, without a restart. */
export function publishAdapter(id: string, name: string): Promise<AdapterInfo> {
  return postJson(`/api/finetune/jobs/${encodeURIComponent(id)}/publish`, { name });
}
