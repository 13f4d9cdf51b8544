/**
 * The life of one uploaded file, as a state machine:
 *
 *   queued ─start─▶ uploading ─sent─▶ processing ─finish─▶ done (a result per document in the file)
 *     │                 │                  │
 *     └─────────────────┴──────────────────┴──fail─▶ error (network, server error, cancelled)
 *
 * A file that the browser can already tell will be refused (type, size, empty) starts as done/rejected
 * and is never sent. Events that do not fit the current state are ignored.
 */
import { extensionOf } from "./format";
import type { UploadResult } from "./types";

export type UploadPhase = "queued" | "uploading" | "processing" | "done" | "error";

export interface UploadItem {
  id: string;
  file: File;
  phase: UploadPhase;
  /** Fraction of the file sent, 0..1. */
  progress: number;
  /** One per document the file holds (or held: `removed`); a refused file has one, `rejected`. */
  results: UploadResult[];
  error: { code: string; message: string } | null;
}

export type UploadAction =
  | { type: "add"; files: { id: string; file: File; rejection: UploadResult["error"] }[] }
  | { type: "start"; id: string }
  | { type: "progress"; id: string; fraction: number }
  | { type: "sent"; id: string }
  | { type: "finish"; id: string; results: UploadResult[] }
  | { type: "fail"; id: string; error: { code: string; message: string } }
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
          file,
          phase: rejection ? "done" : "queued",
          progress: 0,
          results: rejection
            ? [{ filename: file.name, document_id: null, outcome: "rejected", chunks: 0, error: rejection }]
            : [],
          error: null,
        })),
      ];
    case "start":
      return update(items, action.id, ["queued"], () => ({ phase: "uploading", progress: 0 }));
    case "progress":
      return update(items, action.id, ["uploading"], (item) => ({
        progress: Math.min(1, Math.max(item.progress, action.fraction)),
      }));
    case "sent":
      return update(items, action.id, ["uploading"], () => ({ phase: "processing", progress: 1 }));
    case "finish":
      return update(items, action.id, ["uploading", "processing"], () => ({
        phase: "done",
        progress: 1,
        results: action.results,
      }));
    case "fail":
      return update(items, action.id, ["queued", "uploading", "processing"], () => ({
        phase: "error",
        error: action.error,
      }));
    case "dismiss":
      return items.filter((item) => item.id !== action.id || !isFinished(item));
    case "clearFinished":
      return items.filter((item) => !isFinished(item));
  }
}

/** The queued items to start now so that at most `concurrency` are in flight. */
export function nextToStart(items: UploadItem[], concurrency: number): UploadItem[] {
  const busy = items.filter((item) => item.phase === "uploading" || item.phase === "processing").length;
  return items.filter((item) => item.phase === "queued").slice(0, Math.max(0, concurrency - busy));
}
