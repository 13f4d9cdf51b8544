/** Streams generated reviews into place, one slot per requested review, with cancellation. */
import { useCallback, useEffect, useRef, useState } from "react";

import { type ApiError, streamReviews } from "../lib/api";
import { consumeStream } from "../lib/consumeStream";
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
    try {
      await consumeStream(
        streamReviews(request, abort.signal),
        {
          onEvent: ({ data: { index, text } }) =>
            setState((s) => ({
              ...s,
              reviews: s.reviews.map((r, i) => (i === index ? { ...r, text: r.text + text } : r)),
            })),
          onDone: ({ reviews, model, adapter }) => setState({ status: "done", reviews, model, adapter, error: null }),
          onError: (error) => setState((s) => ({ ...s, status: "error", error })),
          onStopped: () => {
            if (controller.current === abort) setState((s) => ({ ...s, status: "stopped" }));
          },
        },
        "The stream ended before the reviews were complete.",
      );
    } finally {
      if (controller.current === abort) controller.current = null;
    }
  }, []);

  const stop = useCallback(() => controller.current?.abort(), []);

  return { ...state, generate, stop };
}
