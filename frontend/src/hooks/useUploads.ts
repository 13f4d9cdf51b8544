/** Runs the upload state machine: queues files, sends a few at a time, records each file's result. */
import { useCallback, useEffect, useReducer, useRef } from "react";

import { ApiError, isAbort, type UploadOptions } from "../lib/api";
import { newId } from "../lib/format";
import type { UploadResult } from "../lib/types";
import { nextToStart, uploadReducer, type UploadItem } from "../lib/uploadState";

// Two at a time keeps the bars moving without making the server index many files at once.
const CONCURRENCY = 2;

export type Upload = (file: File, options: UploadOptions) => Promise<UploadResult[]>;

interface Options {
  upload: Upload;
  collection: string;
  /** Turns a file the browser can already refuse into the reason shown for it. */
  precheck: (file: File) => { code: string; message: string } | null;
  /** Called after every file the server answered (to refresh the document list). */
  onSettled: () => void;
}

export function useUploads({ upload, collection, precheck, onSettled }: Options) {
  const [items, dispatch] = useReducer(uploadReducer, [] as UploadItem[]);
  const controllers = useRef(new Map<string, AbortController>());
  const options = useRef({ upload, collection, onSettled });
  useEffect(() => {
    options.current = { upload, collection, onSettled };
  }, [upload, collection, onSettled]);

  useEffect(() => {
    for (const item of nextToStart(items, CONCURRENCY)) {
      if (controllers.current.has(item.id)) continue;
      const abort = new AbortController();
      controllers.current.set(item.id, abort);
      dispatch({ type: "start", id: item.id });
      const { upload: send, collection: target, onSettled: settled } = options.current;
      send(item.file, {
        collection: target || undefined,
        signal: abort.signal,
        onProgress: (fraction) => {
          dispatch({ type: "progress", id: item.id, fraction });
          if (fraction >= 1) dispatch({ type: "sent", id: item.id });
        },
      })
        .then((results) => {
          dispatch({ type: "finish", id: item.id, results });
          settled();
        })
        .catch((error: unknown) => {
          if (isAbort(error)) {
            dispatch({ type: "fail", id: item.id, error: { code: "cancelled", message: "" } });
            return;
          }
          const { code, message } =
            error instanceof ApiError ? error : { code: "internal_error", message: String(error) };
          dispatch({ type: "fail", id: item.id, error: { code, message } });
          settled();
        })
        .finally(() => controllers.current.delete(item.id));
    }
  }, [items]);

  useEffect(() => {
    const running = controllers.current;
    return () => running.forEach((abort) => abort.abort());
  }, []);

  const add = useCallback(
    (files: File[]) =>
      dispatch({ type: "add", files: files.map((file) => ({ id: newId(), file, rejection: precheck(file) })) }),
    [precheck],
  );

  const cancel = useCallback((id: string) => {
    const abort = controllers.current.get(id);
    if (abort) abort.abort();
    else dispatch({ type: "fail", id, error: { code: "cancelled", message: "" } });
  }, []);

  const dismiss = useCallback((id: string) => dispatch({ type: "dismiss", id }), []);
  const clearFinished = useCallback(() => dispatch({ type: "clearFinished" }), []);

  return { items, add, cancel, dismiss, clearFinished };
}
