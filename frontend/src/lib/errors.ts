/** Turn any failure into a heading people can act on plus the server's own words. */
import type { MessageKey } from "../i18n";
import { ApiError, NETWORK_ERROR } from "./api";

export interface Problem {
  title: MessageKey;
  /** The backend's message, or a hint for failures that have none. */
  detail: string | null;
  hint: MessageKey | null;
}

function titleFor(error: ApiError): MessageKey {
  if (error.code === NETWORK_ERROR) return "error.network";
  if (error.code === "model_unavailable") return "error.model";
  if (error.code === "database_unavailable") return "error.database";
  if (error.code === "bad_stream") return "error.stream";
  switch (error.status) {
    case 404:
      return "error.notFound";
    case 413:
      return "error.tooLarge";
    case 415:
      return "error.unsupported";
    case 400:
    case 409:
    case 422:
      return "error.invalid";
    default:
      return "error.server";
  }
}

export function describeError(error: unknown): Problem {
  if (error instanceof ApiError) {
    const network = error.code === NETWORK_ERROR;
    return {
      title: titleFor(error),
      detail: network ? null : error.message,
      hint: network ? "error.networkHint" : null,
    };
  }
  return { title: "error.server", detail: error instanceof Error ? error.message : String(error), hint: null };
}
