/** The one client of the backend's HTTP API: every request and every error goes through here. */

import { readSSE } from "./sse";
import type {
  ChatEvent,
  ChatRequest,
  DocumentInfo,
  ErrorBody,
  ErrorParams,
  ModelsResponse,
  ReadyResponse,
  ReviewEvent,
  ReviewRequest,
  SearchRequest,
  SearchResult,
  StatusResponse,
  UploadResult,
} from "./types";

/** An error answered by the backend (`{"error": {"code", "message"}}`) or a failed connection (status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** Values the message names, for wording it in the UI's language (see `lib/errors.ts`). */
  readonly params: ErrorParams;

  constructor(status: number, code: string, message: string, params: ErrorParams = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.params = params;
  }
}

export const NETWORK_ERROR = "network_error";

/** True when a request was cancelled by its AbortSignal (the user pressed stop or left the page). */
export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}

function isErrorBody(body: unknown): body is ErrorBody {
  const error = (body as ErrorBody | null)?.error;
  return typeof error?.code === "string" && typeof error.message === "string";
}

function isParams(params: unknown): params is ErrorParams {
  return (
    typeof params === "object" &&
    params !== null &&
    Object.values(params).every((value) => typeof value === "string" || typeof value === "number")
  );
}

function errorFrom(status: number, body: unknown): ApiError {
  if (isErrorBody(body)) {
    const { code, message, params } = body.error;
    return new ApiError(status, code, message, isParams(params) ? params : {});
  }
  return new ApiError(status, "http_error", `HTTP ${status}`);
}

async function connect(path: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(path, init);
  } catch (error) {
    if (isAbort(error)) throw error;
    throw new ApiError(0, NETWORK_ERROR, "The server could not be reached.");
  }
}

async function send(path: string, init: RequestInit = {}): Promise<Response> {
  const response = await connect(path, init);
  if (!response.ok) {
    const body: unknown = await response.json().catch(() => null);
    throw errorFrom(response.status, body);
  }
  return response;
}

async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  const response = await send(path, { signal });
  return (await response.json()) as T;
}

async function postJson<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  const response = await send(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  return (await response.json()) as T;
}

/** POST a JSON body and yield the parsed events of the `text/event-stream` answer. */
async function* postStream<E extends { event: string; data: unknown }>(
  path: string,
  body: unknown,
  signal: AbortSignal,
): AsyncGenerator<E> {
  const response = await send(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.body) throw new ApiError(response.status, "bad_stream", "The answer had no body.");
  for await (const message of readSSE(response.body)) {
    let data: unknown;
    try {
      data = JSON.parse(message.data);
    } catch {
      throw new ApiError(response.status, "bad_stream", `Unreadable "${message.event}" event.`);
    }
    yield { event: message.event, data } as E;
  }
}

export function getHealth(signal?: AbortSignal): Promise<{ status: string }> {
  return getJson("/health", signal);
}

/** Readiness answers 503 with the same body when a check fails: a result to show, not an error. */
export async function getReady(signal?: AbortSignal): Promise<ReadyResponse> {
  const response = await connect("/ready", { signal });
  const body: unknown = await response.json().catch(() => null);
  if ((response.ok || response.status === 503) && (body as ReadyResponse | null)?.checks) {
    return body as ReadyResponse;
  }
  throw errorFrom(response.status, body);
}

export function getStatus(signal?: AbortSignal): Promise<StatusResponse> {
  return getJson("/api/status", signal);
}

export function getModels(signal?: AbortSignal): Promise<ModelsResponse> {
  return getJson("/api/models", signal);
}

export async function search(request: SearchRequest, signal?: AbortSignal): Promise<SearchResult[]> {
  const body = await postJson<{ results: SearchResult[] }>("/api/search", request, signal);
  return body.results;
}

export async function listDocuments(collection?: string): Promise<DocumentInfo[]> {
  const query = collection ? `?collection=${encodeURIComponent(collection)}` : "";
  const body = await getJson<{ documents: DocumentInfo[] }>(`/api/documents${query}`);
  return body.documents;
}

export function getDocument(id: string, signal?: AbortSignal): Promise<DocumentInfo> {
  return getJson(`/api/documents/${encodeURIComponent(id)}`, signal);
}

export async function deleteDocument(id: string): Promise<void> {
  await send(`/api/documents/${encodeURIComponent(id)}`, { method: "DELETE" });
}

export async function listCollections(): Promise<string[]> {
  const body = await getJson<{ collections: string[] }>("/api/collections");
  return body.collections;
}

export function streamChat(request: ChatRequest, signal: AbortSignal): AsyncGenerator<ChatEvent> {
  return postStream<ChatEvent>("/api/chat/stream", request, signal);
}

export function streamReviews(request: ReviewRequest, signal: AbortSignal): AsyncGenerator<ReviewEvent> {
  return postStream<ReviewEvent>("/api/reviews/generate/stream", request, signal);
}

export interface UploadOptions {
  collection?: string;
  signal?: AbortSignal;
  /** Called with the fraction (0..1) of the file sent so far. */
  onProgress?: (fraction: number) => void;
}

/**
 * Upload one file and get one result per document in it (a .jsonl or .csv holds many; documents the
 * file no longer holds come back as `removed`). XMLHttpRequest rather than fetch because only it
 * reports upload progress. A rejected file is a result (`outcome: "rejected"`), even though the
 * backend answers it with 4xx.
 */
export function uploadFile(file: File, options: UploadOptions = {}): Promise<UploadResult[]> {
  const form = new FormData();
  form.append("files", file, file.name);
  if (options.collection) form.append("collection", options.collection);

  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/documents");
    xhr.responseType = "text";
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) options.onProgress?.(event.loaded / event.total);
    };
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // A proxy's HTML error page: reported below by its status alone.
      }
      const results = (body as { results?: UploadResult[] } | null)?.results;
      if (results?.length) resolve(results);
      else reject(errorFrom(xhr.status, body));
    };
    xhr.onerror = () => reject(new ApiError(0, NETWORK_ERROR, "The server could not be reached."));
    xhr.onabort = () => reject(new DOMException("Upload cancelled.", "AbortError"));
    options.signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(form);
  });
}
