/**
 * Turn any failure into a heading people can act on plus what went wrong, in the UI's language.
 *
 * The server's `message` is English. Each error code it can send has its own text in `i18n/ko.ts` and
 * `i18n/en.ts` (`errorCode.<code>`), filled in from the error's `params`; `i18n/error-codes.json`, written
 * by the backend's tests, lists the codes so that a test fails when one has no text. A code without a
 * text shows the server's message in English and a generic text with the code in Korean.
 */
import { hasMessage, type MessageKey, type Translate } from "../i18n";
import { ApiError, NETWORK_ERROR } from "./api";
import type { ErrorInfo } from "./types";

/** Codes the browser makes itself (on top of those the backend lists in `i18n/error-codes.json`). */
export const CLIENT_ERROR_CODES = ["bad_stream"] as const;

export interface Problem {
  title: MessageKey;
  /** What went wrong, worded from the error's code; null for failures that have nothing to add. */
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

/** The text for an API error: its code's own words with its values, or the fallback for unknown codes. */
export function errorText(error: ErrorInfo, t: Translate): string {
  const code = `errorCode.${error.code}`;
  const key = hasMessage(code) ? code : "error.unknownCode";
  const text = t(key, { code: error.code, ...error.params, message: error.message });
  // A request's invalid fields (the request's schema names them all, the app's own checks the one it
  // refused), unless the text quotes the server, whose message names them already.
  const fields = error.params?.fields ?? error.params?.field;
  const quotesServer = t(key).includes("{message}");
  return typeof fields === "string" && fields && !quotesServer ? `${text} ${t("error.fields", { fields })}` : text;
}

export function describeError(error: unknown, t: Translate): Problem {
  if (error instanceof ApiError) {
    const network = error.code === NETWORK_ERROR;
    return {
      title: titleFor(error),
      detail: network ? null : errorText(error, t),
      hint: network ? "error.networkHint" : null,
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { title: "error.server", detail: t("error.unexpected", { message }), hint: null };
}
