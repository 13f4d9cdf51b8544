/**
 * The fine-tuning job a page shows, followed over its event stream (as uploads' jobs are) until it
 * ends. The job's id lives in the URL (`?job=`) and, for a visit without one, in localStorage, so a
 * reload or a later visit finds the run again.
 */
import { useCallback, useEffect, useState } from "react";

import { isAbort } from "../lib/api";
import { isFinetuneJob } from "../lib/finetune";
import { followJob } from "../lib/jobs";
import type { FinetuneJob, TrainMetric } from "../lib/types";

export const FINETUNE_JOB_KEY = "rag.finetuneJob";

/** The job this browser showed last, if any. */
export function storedFinetuneJob(): string | null {
  try {
    return localStorage.getItem(FINETUNE_JOB_KEY);
  } catch {
    return null;
  }
}

export function storeFinetuneJob(id: string): void {
  try {
    localStorage.setItem(FINETUNE_JOB_KEY, id);
  } catch {
    // Storage full or disabled: the URL still names the job.
  }
}

/**
 * The steps known before and those of `next`, by step: an event brings only the steps logged since
 * the event before, a read of the job brings (an even spread of) all of them.
 */
export function mergeMetrics(known: TrainMetric[], next: TrainMetric[]): TrainMetric[] {
  const byStep = new Map(known.map((metric) => [metric.step, metric]));
  for (const metric of next) byStep.set(metric.step, metric);
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

interface Seen {
  id: string | null;
  job: FinetuneJob | null;
  error: unknown;
}

/** The state update that shows `job`, keeping the steps seen before. */
function seeing(id: string, job: FinetuneJob) {
  return (before: Seen): Seen => {
    const known = before.id === id && before.job ? before.job.metrics : [];
    return { id, job: { ...job, metrics: mergeMetrics(known, job.metrics) }, error: null };
  };
}

export function useFinetuneJob(jobId: string | null, retryMs?: number) {
  const [seen, setSeen] = useState<Seen>({ id: null, job: null, error: null });
  // Bumped to follow the job again after it ended (a publish changes it without new events).
  const [round, setRound] = useState(0);

  useEffect(() => {
    if (!jobId) return;
    const abort = new AbortController();
    followJob(jobId, {
      signal: abort.signal,
      retryMs,
      onUpdate: (info) => {
        if (isFinetuneJob(info)) setSeen(seeing(jobId, info));
      },
    }).catch((error: unknown) => {
      if (!isAbort(error)) setSeen((before) => ({ id: jobId, job: before.id === jobId ? before.job : null, error }));
    });
    return () => abort.abort();
  }, [jobId, retryMs, round]);

  /** Show `job` at once (an action's answer); its events, or a new follow when it had ended, come next. */
  const update = useCallback(
    (job: FinetuneJob | null = null) => {
      if (job && job.id === jobId) setSeen(seeing(jobId, job));
      setRound((n) => n + 1);
    },
    [jobId],
  );

  const current = seen.id === jobId ? seen : { job: null, error: null };
  return { job: current.job, error: current.error, update };
}
