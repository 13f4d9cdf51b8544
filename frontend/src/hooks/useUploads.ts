/**
 * Runs the upload state machine: queues files, sends a few at a time, follows the job that indexes
 * each one and records each file's result.
 *
 * The jobs are kept in localStorage from the moment the server accepts them until their end has been
 * shown, so a reload or a second tab lists the unfinished ones again and follows them to their end
 * (one that ended while no page was open shows its results then). Leaving the page stops following,
 * never the jobs themselves; a file still being sent is cancelled with it.
 */
import { useCallback, useEffect, useReducer, useRef } from "react";

import { ApiError, cancelJob, isAbort, type UploadAnswer, type UploadOptions } from "../lib/api";
import { newId } from "../lib/format";
import { followJob, forgetJobs, JOBS_STORAGE_KEY, readStoredJobs, storeJob } from "../lib/jobs";
import { endOfJob, nextToStart, uploadReducer } from "../lib/uploadState";

// Two at a time keeps the bars moving without making the server index many files at once.
const CONCURRENCY = 2;

export type Upload = (file: File, options: UploadOptions) => Promise<UploadAnswer>;

interface Options {
  upload: Upload;
  collection: string;
  /** Turns a file the browser can already refuse into the reason shown for it. */
  precheck: (file: File) => { code: string; message: string } | null;
  /** Called after every file the server answered (to refresh the document list). */
  onSettled: () => void;
  /** The pause before a dropped job stream is opened again (see `followJob`). */
  retryMs?: number;
}

/** Forget a finished request, unless the item has started another since. */
function release(map: Map<string, AbortController>, id: string, abort: AbortController): void {
  if (map.get(id) === abort) map.delete(id);
}

function problemOf(error: unknown): { code: string; message: string } {
  return error instanceof ApiError ? error : { code: "internal_error", message: String(error) };
}

export function useUploads({ upload, collection, precheck, onSettled, retryMs }: Options) {
  const [items, dispatch] = useReducer(uploadReducer, null, () =>
    uploadReducer([], { type: "restore", jobs: readStoredJobs() }),
  );
  // Keyed by item id: the requests sending files, and the following of jobs. A job's entry stays
  // after it ended: an effect may still run with the items of a render from before that end.
  const controllers = useRef(new Map<string, AbortController>());
  const follows = useRef(new Map<string, AbortController>());
  const current = useRef(items);
  const options = useRef({ upload, collection, onSettled, retryMs });
  useEffect(() => {
    options.current = { upload, collection, onSettled, retryMs };
    current.current = items;
  });

  useEffect(() => {
    const { upload: send, collection: target, onSettled: settled, retryMs: retry } = options.current;
    for (const item of nextToStart(items, CONCURRENCY)) {
      if (controllers.current.has(item.id) || !item.file) continue;
      const abort = new AbortController();
      controllers.current.set(item.id, abort);
      dispatch({ type: "start", id: item.id });
      send(item.file, {
        collection: target || undefined,
        signal: abort.signal,
        onProgress: (fraction) => {
          dispatch({ type: "progress", id: item.id, fraction });
          if (fraction >= 1) dispatch({ type: "sent", id: item.id });
        },
      })
        .then((answer) => {
          if ("jobId" in answer) {
            // Queued first, so that a "storage" event for this very job finds it already known.
            dispatch({ type: "accepted", id: item.id, jobId: answer.jobId });
            storeJob({ jobId: answer.jobId, name: item.name, size: item.size });
            return;
          }
          dispatch({ type: "finish", id: item.id, results: answer.results });
          settled();
        })
        .catch((error: unknown) => {
          if (isAbort(error)) {
            dispatch({ type: "fail", id: item.id, error: { code: "cancelled", message: "" } });
            return;
          }
          dispatch({ type: "fail", id: item.id, error: problemOf(error) });
          settled();
        })
        .finally(() => release(controllers.current, item.id, abort));
    }

    for (const item of items) {
      const job = item.job;
      if (item.phase !== "processing" || !job || follows.current.has(item.id)) continue;
      const abort = new AbortController();
      follows.current.set(item.id, abort);
      followJob(job.id, {
        signal: abort.signal,
        retryMs: retry,
        onUpdate: (info) => dispatch({ type: "job", id: item.id, job: info }),
      })
        .then((final) => {
          forgetJobs([job.id]);
          dispatch(endOfJob(item.id, final));
          settled();
        })
        .catch((error: unknown) => {
          if (isAbort(error)) return;
          forgetJobs([job.id]);
          // A job the server no longer knows has nothing left to show after a reload.
          if (!item.file && error instanceof ApiError && error.status === 404) {
            dispatch({ type: "remove", id: item.id });
            return;
          }
          dispatch({ type: "fail", id: item.id, error: problemOf(error) });
        });
    }
  }, [items]);

  useEffect(() => {
    const maps = [controllers.current, follows.current];
    return () => {
      for (const map of maps) {
        map.forEach((abort) => abort.abort());
        map.clear();
      }
    };
  }, []);

  // Uploads started in another tab show up here too.
  useEffect(() => {
    const onStorage = (event: StorageEvent) => {
      if (event.key === JOBS_STORAGE_KEY) dispatch({ type: "restore", jobs: readStoredJobs() });
    };
    window.addEventListener("storage", onStorage);
    return () => window.removeEventListener("storage", onStorage);
  }, []);

  const add = useCallback(
    (files: File[]) =>
      dispatch({ type: "add", files: files.map((file) => ({ id: newId(), file, rejection: precheck(file) })) }),
    [precheck],
  );

  const cancel = useCallback((id: string) => {
    const item = current.current.find((candidate) => candidate.id === id);
    const job = item?.phase === "processing" ? item.job : null;
    if (job) {
      // The job's own events say when it has stopped; until then the file shows it is being cancelled.
      dispatch({ type: "cancelling", id, cancelling: true });
      cancelJob(job.id).catch(() => dispatch({ type: "cancelling", id, cancelling: false }));
      return;
    }
    const abort = controllers.current.get(id);
    if (abort) abort.abort();
    else dispatch({ type: "fail", id, error: { code: "cancelled", message: "" } });
  }, []);

  const dismiss = useCallback((id: string) => dispatch({ type: "dismiss", id }), []);
  const clearFinished = useCallback(() => dispatch({ type: "clearFinished" }), []);

  return { items, add, cancel, dismiss, clearFinished };
}
