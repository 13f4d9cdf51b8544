/**
 * The life of one uploaded file, as a state machine:
 *
 *   queued ─start─▶ uploading ─sent─▶ processing ─finish─▶ done (a result per document in the file)
 *     │                 │                  │
 *     └─────────────────┴──────────────────┴──fail─▶ error (network, server error, job failed, cancelled)
 *
 * A backend with jobs answers the upload with a job (`accepted`): the file stays `processing` while
 * the job moves (`job`), and the job's end finishes or fails it (`endOfJob`). An upload whose job was
 * kept in the browser comes back after a reload as `processing` with that job (`restore`), without
 * its file. A file that the browser can already tell will be refused (type, size, empty) starts as
 * done/rejected and is never sent. Events that do not fit the current state are ignored.
 */
import { extensionOf } from "./format";
import { isFinalStatus, type StoredJob } from "./jobs";
import type { ErrorInfo, JobInfo, JobStatus, UploadResult } from "./types";

export type UploadPhase = "queued" | "uploading" | "processing" | "done" | "error";

/** The job that indexes an uploaded file, as far as the browser has heard of it. */
export interface UploadJob {
  id: string;
  /** Null until the server has said anything about the job. */
  status: JobStatus | null;
  done: number;
  total: number;
  /** Cancelling was asked for and the job has not stopped yet. */
  cancelling: boolean;
}

export interface UploadItem {
  id: string;
  name: string;
  size: number;
  /** The file to send; null for an upload found again after a reload (its job has the file). */
  file: File | null;
  phase: UploadPhase;
  /** Fraction of the file sent, 0..1. */
  progress: number;
  job: UploadJob | null;
  /** One per document the file holds (or held: `removed`); a refused file has one, `rejected`. */
  results: UploadResult[];
  error: ErrorInfo | null;
}

export type UploadAction =
  | { type: "add"; files: { id: string; file: File; rejection: UploadResult["error"] }[] }
  | { type: "restore"; jobs: StoredJob[] }
  | { type: "start"; id: string }
  | { type: "progress"; id: string; fraction: number }
  | { type: "sent"; id: string }
  | { type: "accepted"; id: string; jobId: string }
  | { type: "job"; id: string; job: JobInfo }
  | { type: "cancelling"; id: string; cancelling: boolean }
  | { type: "finish"; id: string; results: UploadResult[] }
  | { type: "fail"; id: string; error: ErrorInfo; results?: UploadResult[] }
  | { type: "remove"; id: string }
  | { type: "dismiss"; id: string }
  | { type: "clearFinished" };

export const SUPPORTED_EXTENSIONS = [
  ".txt",
  ".md",
  ".markdown",
  ".pdf",
  ".html",
  ".htm",
  ".docx",
  ".pptx",
  ".xlsx",
  ".hwp",
  ".hwpx",
  ".hwpml",
  ".hml",
  ".png",
  ".jpg",
  ".jpeg",
  ".jsonl",
  ".csv",
] as const;

export type Rejection =
  { reason: "type"; ext: string } | { reason: "size"; bytes: number; maxMb: number } | { reason: "empty" };

/** Why the server would refuse this file, if the browser can already tell; null when it may be sent. */
export function checkFile(file: File, maxUploadMb: number | null): Rejection | null {
  const ext = extensionOf(file.name);
  if (!(SUPPORTED_EXTENSIONS as readonly string[]).includes(ext)) return { reason: "type", ext: ext || file.name };
  if (file.size === 0) return { reason: "empty" };
  if (maxUploadMb !== null && file.size > maxUploadMb * 1024 * 1024) {
    return { reason: "size", bytes: file.size, maxMb: maxUploadMb };
  }
  return null;
}

/** The error code the backend uses for the same refusal. */
export function rejectionCode(rejection: Rejection): string {
  return { type: "unsupported_type", size: "too_large", empty: "invalid_input" }[rejection.reason];
}

export function isFinished(item: UploadItem): boolean {
  return item.phase === "done" || item.phase === "error";
}

/** The upload's request is still under way (a job, once accepted, runs on the server without it). */
function isSending(item: UploadItem): boolean {
  return item.phase === "uploading" || (item.phase === "processing" && item.job === null);
}

/** The item an upload whose job was kept in the browser comes back as. */
function restored({ jobId, name, size }: StoredJob): UploadItem {
  return {
    id: `job-${jobId}`,
    name,
    size,
    file: null,
    phase: "processing",
    progress: 1,
    job: { id: jobId, status: null, done: 0, total: 0, cancelling: false },
    results: [],
    error: null,
  };
}

/** How a job's end shows on its file: the results, or what stopped it (with the results it got to). */
export function endOfJob(id: string, job: JobInfo): UploadAction {
  const results = job.results;
  switch (job.status) {
    case "succeeded":
      return results.length > 0
        ? { type: "finish", id, results }
        : { type: "fail", id, error: { code: "indexing_failed", message: "The job gave no result." } };
    case "cancelled":
      return { type: "fail", id, error: { code: "cancelled", message: "" }, results };
    default:
      return {
        type: "fail",
        id,
        error: job.error ?? { code: "indexing_failed", message: "The job failed." },
        results,
      };
  }
}

function update(
  items: UploadItem[],
  id: string,
  from: readonly UploadPhase[],
  change: (item: UploadItem) => Partial<UploadItem>,
): UploadItem[] {
  return items.map((item) => (item.id === id && from.includes(item.phase) ? { ...item, ...change(item) } : item));
}

export function uploadReducer(items: UploadItem[], action: UploadAction): UploadItem[] {
  switch (action.type) {
    case "add":
      return [
        ...items,
        ...action.files.map(({ id, file, rejection }): UploadItem => ({
          id,
          name: file.name,
          size: file.size,
          file,
          phase: rejection ? "done" : "queued",
          progress: 0,
          job: null,
          results: rejection
            ? [{ filename: file.name, document_id: null, outcome: "rejected", chunks: 0, error: rejection }]
            : [],
          error: null,
        })),
      ];
    case "restore": {
      const known = new Set(items.flatMap((item) => (item.job ? [item.job.id] : [])));
      return [...items, ...action.jobs.filter((job) => !known.has(job.jobId)).map(restored)];
    }
    case "start":
      return update(items, action.id, ["queued"], () => ({ phase: "uploading", progress: 0 }));
    case "progress":
      return update(items, action.id, ["uploading"], (item) => ({
        progress: Math.min(1, Math.max(item.progress, action.fraction)),
      }));
    case "sent":
      return update(items, action.id, ["uploading"], () => ({ phase: "processing", progress: 1 }));
    case "accepted":
      return update(items, action.id, ["uploading", "processing"], () => ({
        phase: "processing",
        progress: 1,
        job: { id: action.jobId, status: null, done: 0, total: 0, cancelling: false },
      }));
    case "job":
      return update(items, action.id, ["processing"], (item) =>
        item.job
          ? {
              job: {
                ...item.job,
                status: action.job.status,
                done: action.job.progress.done,
                total: action.job.progress.total,
                cancelling: item.job.cancelling && !isFinalStatus(action.job.status),
              },
            }
          : {},
      );
    case "cancelling":
      return update(items, action.id, ["processing"], (item) =>
        item.job ? { job: { ...item.job, cancelling: action.cancelling } } : {},
      );
    case "finish":
      return update(items, action.id, ["uploading", "processing"], () => ({
        phase: "done",
        progress: 1,
        results: action.results,
      }));
    case "fail":
      return update(items, action.id, ["queued", "uploading", "processing"], (item) => ({
        phase: "error",
        error: action.error,
        results: action.results ?? item.results,
      }));
    case "remove":
      return items.filter((item) => item.id !== action.id);
    case "dismiss":
      return items.filter((item) => item.id !== action.id || !isFinished(item));
    case "clearFinished":
      return items.filter((item) => !isFinished(item));
  }
}

/** The queued items to start now so that at most `concurrency` requests are in flight. */
export function nextToStart(items: UploadItem[], concurrency: number): UploadItem[] {
  const busy = items.filter(isSending).length;
  return items.filter((item) => item.phase === "queued").slice(0, Math.max(0, concurrency - busy));
}
