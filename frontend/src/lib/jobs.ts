/**
 * Background jobs seen from the browser: following one to its end, and the uploads' jobs kept in
 * localStorage so that a reload (or a second tab) finds them again.
 *
 * A job is followed over its event stream; when the stream drops, the job is read once (so that an
 * end missed while the stream was down is seen at once), then the stream is opened again after a
 * pause. A job whose stream is refused or unreadable is polled instead. An unreachable or failing
 * server is tried again with a growing pause; a job the server does not know (404) ends the following.
 */
import { ApiError, getJob, isAbort, streamJob } from "./api";
import type { JobInfo, JobStatus } from "./types";

export const JOBS_STORAGE_KEY = "rag.uploadJobs";
// Jobs whose end no page saw (a tab closed mid-way) stay until one does; a bound keeps them few.
const MAX_STORED = 50;
const MAX_PAUSE_MS = 15_000;

export function isFinalStatus(status: JobStatus): boolean {
  return status === "succeeded" || status === "failed" || status === "cancelled";
}

/** An upload's job as the browser remembers it: enough to list it again before the server answers. */
export interface StoredJob {
  jobId: string;
  name: string;
  size: number;
}

function isStoredJob(value: unknown): value is StoredJob {
  const job = value as StoredJob | null;
  return (
    typeof job === "object" &&
    job !== null &&
    typeof job.jobId === "string" &&
    job.jobId !== "" &&
    typeof job.name === "string" &&
    typeof job.size === "number"
  );
}

/** The uploads' jobs kept in this browser, oldest first; whatever cannot be read is left out. */
export function readStoredJobs(): StoredJob[] {
  try {
    const parsed: unknown = JSON.parse(localStorage.getItem(JOBS_STORAGE_KEY) ?? "[]");
    return Array.isArray(parsed) ? parsed.filter(isStoredJob) : [];
  } catch {
    return [];
  }
}

function writeStoredJobs(jobs: StoredJob[]): void {
  try {
    if (jobs.length === 0) localStorage.removeItem(JOBS_STORAGE_KEY);
    else localStorage.setItem(JOBS_STORAGE_KEY, JSON.stringify(jobs.slice(-MAX_STORED)));
  } catch {
    // Storage full or disabled: the upload goes on, it just will not be found again after a reload.
  }
}

// Each change reads the list afresh, so that what another tab stored in the meantime is kept.
export function storeJob(job: StoredJob): void {
  writeStoredJobs([...readStoredJobs().filter((stored) => stored.jobId !== job.jobId), job]);
}

export function forgetJobs(jobIds: readonly string[]): void {
  if (jobIds.length === 0) return;
  writeStoredJobs(readStoredJobs().filter((stored) => !jobIds.includes(stored.jobId)));
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const abort = () => {
      clearTimeout(timer);
      reject(new DOMException("Following the job was cancelled.", "AbortError"));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", abort);
      resolve();
    }, ms);
    if (signal.aborted) abort();
    else signal.addEventListener("abort", abort, { once: true });
  });
}

/** A failure that may pass: the server could not be reached or had trouble of its own. */
function isPassing(error: unknown): boolean {
  return error instanceof ApiError && (error.status === 0 || error.status >= 500);
}

function isJob(value: unknown): value is JobInfo {
  const job = value as JobInfo | null;
  return typeof job?.id === "string" && typeof job.status === "string" && typeof job.progress === "object";
}

export interface FollowOptions {
  signal: AbortSignal;
  /** Called with the job each time it is seen. */
  onUpdate: (job: JobInfo) => void;
  /** The pause before the stream is opened again or the job read again (doubled while the server fails). */
  retryMs?: number;
}

/** Follow a job until it ends; resolves with the final job. Rejects on abort or when the job is unknown. */
export async function followJob(id: string, { signal, onUpdate, retryMs = 1000 }: FollowOptions): Promise<JobInfo> {
  let streaming = true;
  let failures = 0;
  for (;;) {
    if (streaming) {
      try {
        for await (const { event, data } of streamJob(id, signal)) {
          if (!isJob(data)) continue;
          failures = 0;
          onUpdate(data);
          if (event === "done" || isFinalStatus(data.status)) return data;
        }
      } catch (error) {
        if (isAbort(error)) throw error;
        // Refused or unreadable: the job itself, read below, says whether it is there at all.
        if (!isPassing(error)) streaming = false;
      }
    }
    try {
      const job = await getJob(id, signal);
      failures = 0;
      onUpdate(job);
      if (isFinalStatus(job.status)) return job;
    } catch (error) {
      if (!isPassing(error)) throw error;
      failures += 1;
    }
    await pause(Math.min(MAX_PAUSE_MS, retryMs * 2 ** failures), signal);
  }
}
