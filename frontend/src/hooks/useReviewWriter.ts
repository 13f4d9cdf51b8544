/** Streams generated reviews into place, one slot per requested review, with cancellation. */
import { useCallback, useEffect, useRef, useState } from "react";

import { ApiError, isAbort, streamReviews } from "../lib/api";
import type { Review, ReviewRequest } from "../lib/types";

export type WriterStatus = "idle" | "streaming" | "done" | "stopped" | "error";

export interface WriterState {
  status: WriterStatus;
  reviews: Review[];
  model: string | null;
  adapter: string | null;
  error: ApiError | null;
}

const IDLE: WriterState = { status: "idle", reviews: [], model: null, adapter: null, error: null };

export function useReviewWriter() {
  const [state, setState] = useState<WriterState>(IDLE);
  const controller = useRef<AbortController | null>(null);

  useEffect(() => () => controller.current?.abort(), []);

  const generate = useCallback(async (request: ReviewRequest) => {
    controller.current?.abort();
    const abort = new AbortController();
    controller.current = abort;
    const slots = Array.from({ length: request.n }, () => ({ text: "", rating: request.rating }));
    setState({ ...IDLE, status: "streaming", reviews: slots });
    let finished = false;
    try {
      for await (const event of streamReviews(request, abort.signal)) {
        if (event.event === "token") {
          const { index, text } = event.data;
          setState((s) => ({
            ...s,
            reviews: s.reviews.map((r, i) => (i === index ? { ...r, text: r.text + text } : r)),
          }));
        } else if (event.event === "done") {
          finished = true;
          const { reviews, model, adapter } = event.data;
          setState({ status: "done", reviews, model, adapter, error: null });
        } else if (event.event === "error") {
          finished = true;
          const { code, message } = event.data.error;
          setState((s) => ({ ...s, status: "error", error: new ApiError(0, code, message) }));
        }
      }
      if (!finished) throw new ApiError(0, "bad_stream", "The stream ended before the reviews were complete.");
    } catch (error) {
      if (isAbort(error)) {
        if (controller.current === abort) setState((s) => ({ ...s, status: "stopped" }));
        return;
      }
      const failure = error instanceof ApiError ? error : new ApiError(0, "internal_error", String(error));
      setState((s) => ({ ...s, status: "error", error: failure }));
    } finally {
      if (controller.current === abort) controller.current = null;
    }
  }, []);

  const stop = useCallback(() => controller.current?.abort(), []);

  return { ...state, generate, stop };
}
