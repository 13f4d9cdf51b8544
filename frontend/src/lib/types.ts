/** Shapes of the backend's HTTP API (kept in step with backend/app/api/schemas.py). */

export type SearchMode = "hybrid" | "dense" | "sparse";

export interface ErrorBody {
  error: { code: string; message: string };
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

export interface Source {
  number: number;
  document_id: string;
  chunk_id: string;
  title: string;
  source: string;
  text: string;
  score: number;
  metadata: Metadata;
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
  error: { code: string; message: string } | null;
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
