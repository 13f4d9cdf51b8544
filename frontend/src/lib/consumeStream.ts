/** One way to read an answer or review stream: its events in order, then exactly one ending. */
import { ApiError, isAbort } from "./api";
import type { ErrorBody } from "./types";

interface StreamEvent {
  event: string;
  data: unknown;
}

type Ending = { event: "done" } | { event: "error"; data: ErrorBody };

export interface StreamHandlers<E extends StreamEvent> {
  /** An event before the end: sources, tokens. */
  onEvent: (event: Exclude<E, Ending>) => void;
  /** The stream's `done` event. */
  onDone: (data: Extract<E, { event: "done" }>["data"]) => void;
  /** The stream's `error` event, a request that failed, or a stream that ended before `done`. */
  onError: (error: ApiError) => void;
  /** The request's signal aborted it (the user pressed stop or left). */
  onStopped: () => void;
}

/**
 * Read `events` to their end and call exactly one of `onDone`, `onError` or `onStopped`.
 * `incomplete` is the message of a stream that ends without `done` or `error`.
 */
export async function consumeStream<E extends StreamEvent>(
  events: AsyncIterable<E>,
  handlers: StreamHandlers<E>,
  incomplete: string,
): Promise<void> {
  try {
    for await (const event of events) {
      if (event.event === "done") {
        handlers.onDone((event as Extract<E, { event: "done" }>).data);
        return;
      }
      if (event.event === "error") {
        const { code, message, params } = (event.data as ErrorBody).error;
        handlers.onError(new ApiError(0, code, message, params));
        return;
      }
      handlers.onEvent(event as Exclude<E, Ending>);
    }
    handlers.onError(new ApiError(0, "bad_stream", incomplete));
  } catch (error) {
    if (isAbort(error)) handlers.onStopped();
    else handlers.onError(error instanceof ApiError ? error : new ApiError(0, "internal_error", String(error)));
  }
}
