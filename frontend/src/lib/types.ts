/** Shapes of the backend's HTTP API (kept in step with backend/app/api/schemas.py). */

export type SearchMode = "hybrid" | "dense" | "sparse";

/** Values an error's message names (a file name, a limit), for wording it in the UI's language. */
export type ErrorParams = Record<string, string | number>;

/** The API's `error` object: a stable code, the server's English message and its values. */
export interface ErrorInfo {
  code: string;
  message: string;
  params?: ErrorParams;
}

export interface ErrorBody {
  error: ErrorInfo;
}

export interface Metadata {
  source?: string;
  title?: string;
  collection?: string;
  [key: string]: unknown;
}

export interface SearchRequest {
  query: string;
  top_k?: number;
  mode?: SearchMode;
  collection?: string;
}

export interface SearchResult {
  document_id: string;
  chunk_id: string;
  text: string;
  score: number;
  metadata: Metadata;
}

export interface HistoryMessage {
  role: "user" | "assistant";
  content: string;
}

export interface ChatRequest {
  question: string;
  history?: HistoryMessage[];
  top_k?: number;
  mode?: SearchMode;
  collection?: string;
}

export type PageUnit = "page" | "slide" | "sheet";

export interface Source {
  number: number;
  document_id: string;
  chunk_id: string;
  title: string;
  source: string;
  text: string;
  score: number;
  metadata: Metadata;
  // Where the passage is; absent from answers saved before the API sent them.
  filename?: string;
  page?: number | null;
  page_end?: number | null;
  page_label?: string | null;
  page_unit?: PageUnit | null;
}

export type DocumentStatus = "pending" | "indexing" | "ready" | "failed";

export interface DocumentInfo {
  id: string;
  collection: string;
  source: string;
  title: string;
  status: DocumentStatus;
  error: string | null;
  chunk_count: number;
  size_bytes: number;
  metadata: Metadata;
  created_at: string;
  updated_at: string;
}

export type UploadOutcome = "indexed" | "unchanged" | "failed" | "removed" | "rejected";

export interface UploadResult {
  filename: string;
  document_id: string | null;
  outcome: UploadOutcome;
  chunks: number;
  error: ErrorInfo | null;
}

export interface CheckResult {
  ok: boolean;
  detail: string;
}

export interface ReadyResponse {
  status: "ready" | "unavailable";
  checks: Record<string, CheckResult>;
}

export interface ProviderInfo {
  provider: string;
  name: string;
}

export interface StatusResponse {
  version: string;
  llm: ProviderInfo;
  embedding: ProviderInfo & { dimension: number };
  database: { mode: "embedded" | "external"; ok: boolean };
  retrieval: { mode: SearchMode; top_k: number };
  limits: { max_upload_mb: number; max_files: number; max_question_chars: number };
}

export interface ModelsResponse {
  llm: ProviderInfo;
  base_model: string | null;
  adapters: string[];
  device: string | null;
  dtype: string | null;
  quantization: string | null;
}

export interface Review {
  text: string;
  rating: number;
}

export interface ReviewRequest {
  rating: number;
  scale: 5 | 10;
  subject?: string;
  n: number;
  temperature?: number;
  adapter?: string | null;
}

export interface ReviewsResponse {
  reviews: Review[];
  model: string;
  adapter: string | null;
}

/** Events of `POST /api/chat/stream`. */
export type ChatEvent =
  | { event: "sources"; data: { sources: Source[] } }
  | { event: "token"; data: { text: string } }
  | { event: "done"; data: { answer: string } }
  | { event: "error"; data: ErrorBody };

/** Events of `POST /api/reviews/generate/stream`. */
export type ReviewEvent =
  | { event: "token"; data: { index: number; text: string } }
  | { event: "done"; data: ReviewsResponse }
  | { event: "error"; data: ErrorBody };
