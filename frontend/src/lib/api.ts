/** The one client of the backend's HTTP API: every request and every error goes through here. */

import { announceKeyNeeded, authHeaders, isAuthCode, type KeyPromptReason } from "./apiKey";
import { readSSE } from "./sse";
import type {
  AdapterLoadRequest,
  ChatEvent,
  ChatRequest,
  DocumentInfo,
  DocumentPage,
  ErrorBody,
  ErrorParams,
  JobEvent,
  JobInfo,
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

/** The `ApiError` for an answer that is not 2xx, from its status and parsed body. */
export function errorFrom(status: number, body: unknown): ApiError {
  if (isErrorBody(body)) {
    const { code, message, params } = body.error;
    // The server wants a key, or another one: the key dialog asks, whichever screen sent this.
    if (isAuthCode(status, code)) announceKeyNeeded(code as KeyPromptReason);
    return new ApiError(status, code, message, isParams(params) ? params : {});
  }
  return new ApiError(status, "http_error", `HTTP ${status}`);
}

/** `init` with the stored API key's `Authorization` header added. */
function signed(init: RequestInit): RequestInit {
  const headers = new Headers(init.headers);
  for (const [name, value] of Object.entries(authHeaders())) headers.set(name, value);
  return { ...init, headers };
}

async function connect(path: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(path, signed(init));
  } catch (error) {
    if (isAbort(error)) throw error;
    throw new ApiError(0, NETWORK_ERROR, "The server could not be reached.");
  }
}

/** Send a request; an answer other than 2xx is thrown as an `ApiError`. */
export async function send(path: string, init: RequestInit = {}): Promise<Response> {
  const response = await connect(path, init);
  if (!response.ok) {
    const body: unknown = await response.json().catch(() => null);
    throw errorFrom(response.status, body);
  }
  return response;
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  const response = await send(path, { signal });
  return (await response.json()) as T;
}

export async function postJson<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  const response = await send(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  return (await response.json()) as T;
}

/** POST a JSON body and yield the parsed events of the `text/event-stream` answer. */
function postStream<E extends { event: string; data: unknown }>(
  path: string,
  body: unknown,
  signal: AbortSignal,
): AsyncGenerator<E> {
  return streamFrom<E>(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
}

/** Send a request and yield the parsed events of its `text/event-stream` answer. */
async function* streamFrom<E extends { event: string; data: unknown }>(
  path: string,
  init: RequestInit,
): AsyncGenerator<E> {
  const response = await send(path, init);
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

/** Load a LoRA adapter from a folder on the server; 422 when it was trained on another base model. */
export async function loadAdapter(request: AdapterLoadRequest): Promise<void> {
  await postJson<unknown>("/api/models/adapters", request);
}

/** Unload an adapter; requests already writing with it finish first. */
export async function unloadAdapter(name: string): Promise<void> {
  await send(`/api/models/adapters/${encodeURIComponent(name)}`, { method: "DELETE" });
}

export async function search(request: SearchRequest, signal?: AbortSignal): Promise<SearchResult[]> {
  const body = await postJson<{ results: SearchResult[] }>("/api/search", request, signal);
  return body.results;
}

/** One page of the documents (of one collection, or all), newest first; `cursor` comes from the page before. */
export function listDocuments(collection?: string, cursor?: string, signal?: AbortSignal): Promise<DocumentPage> {
  const query = new URLSearchParams();
  if (collection) query.set("collection", collection);
  if (cursor) query.set("cursor", cursor);
  const search = query.toString();
  return getJson<DocumentPage>(search ? `/api/documents?${search}` : "/api/documents", signal);
}

/**
 * One document. The same id in two collections is two documents: pass the document's `collection`
 * (without it the backend answers 409 `document_ambiguous` when several collections hold the id).
 */
export function getDocument(id: string, collection?: string, signal?: AbortSignal): Promise<DocumentInfo> {
  return getJson(documentPath(id, collection), signal);
}

/** Delete one document of `collection` (see `getDocument`). */
export async function deleteDocument(id: string, collection?: string): Promise<void> {
  await send(documentPath(id, collection), { method: "DELETE" });
}

function documentPath(id: string, collection?: string): string {
  const path = `/api/documents/${encodeURIComponent(id)}`;
  return collection ? `${path}?${new URLSearchParams({ collection })}` : path;
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

export function getJob(id: string, signal?: AbortSignal): Promise<JobInfo> {
  return getJson(`/api/jobs/${encodeURIComponent(id)}`, signal);
}

/** Ask the backend to stop a job; the job's own events then say when it has stopped. */
export async function cancelJob(id: string): Promise<void> {
  await send(`/api/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
}

/** The job's `progress` events as it moves, then a `done` event with the final job. */
export function streamJob(id: string, signal: AbortSignal): AsyncGenerator<JobEvent> {
  return streamFrom<JobEvent>(`/api/jobs/${encodeURIComponent(id)}/events`, {
    headers: { Accept: "text/event-stream" },
    signal,
  });
}

/** What the backend answered an upload with: a job to follow, or (a backend without jobs) the results. */
export type UploadAnswer = { jobId: string } | { results: UploadResult[] };

export interface UploadOptions {
  collection?: string;
  signal?: AbortSignal;
  /** Called with the fraction (0..1) of the file sent so far. */
  onProgress?: (fraction: number) => void;
}

/**
 * Upload one file to be indexed by a background job (`?wait=false`, answered 202 with the job's id).
 * A backend without jobs ignores the parameter and answers at once with one result per document in
 * the file (a .jsonl or .csv holds many), so the upload works across the change. It never asks to
 * replace: documents an earlier upload of the file held and this one lacks stay. XMLHttpRequest rather than fetch because only it reports
 * upload progress. A rejected file is a result (`outcome: "rejected"`), even though the backend
 * answers it with 4xx.
 */
export function uploadFile(file: File, options: UploadOptions = {}): Promise<UploadAnswer> {
  const form = new FormData();
  form.append("files", file, file.name);
  if (options.collection) form.append("collection", options.collection);

  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/documents?wait=false");
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
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
      const answer = body as { job_id?: unknown; results?: UploadResult[] } | null;
      const ok = xhr.status >= 200 && xhr.status < 300;
      if (ok && typeof answer?.job_id === "string" && answer.job_id) resolve({ jobId: answer.job_id });
      else if (answer?.results?.length) resolve({ results: answer.results });
      else reject(errorFrom(xhr.status, body));
    };
    xhr.onerror = () => reject(new ApiError(0, NETWORK_ERROR, "The server could not be reached."));
    xhr.onabort = () => reject(new DOMException("Upload cancelled.", "AbortError"));
    options.signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(form);
  });
}
