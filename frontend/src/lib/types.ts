/** Shapes of the backend's HTTP API (kept in step with backend/app/api/schemas.py). */

/** The search modes, in the order the UI offers them (`SearchMode` in backend/app/core/config.py). */
export const SEARCH_MODES = ["hybrid", "dense", "sparse"] as const;
export type SearchMode = (typeof SEARCH_MODES)[number];

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

export type DocumentStatus = "indexing" | "ready" | "failed";

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

/** One page of `GET /api/documents`, newest first. */
export interface DocumentPage {
  documents: DocumentInfo[];
  /** Documents on all pages together. */
  total: number;
  /** Pass back as `cursor` for the next page; null on the last page. */
  next_cursor: string | null;
}

export type UploadOutcome = "indexed" | "unchanged" | "failed" | "removed" | "rejected";

export interface UploadResult {
  filename: string;
  document_id: string | null;
  outcome: UploadOutcome;
  chunks: number;
  error: ErrorInfo | null;
}

export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

/** A background job (`GET /api/jobs/{id}`); an upload with `?wait=false` answers its id at once. */
export interface JobInfo {
  id: string;
  kind: "ingest" | "finetune";
  status: JobStatus;
  /** Documents stored and known so far (a file counts as one until it is read), so `total` grows. */
  progress: { done: number; total: number };
  /** The same per-file results as the synchronous upload's, as far as the job got. */
  results: UploadResult[];
  error: ErrorInfo | null;
  created_at: string;
  updated_at: string;
}

/** Events of `GET /api/jobs/{id}/events`: the job as it moves, then the final job. */
export type JobEvent = { event: "progress"; data: JobInfo } | { event: "done"; data: JobInfo };

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

/** The review role as `/api/status` reports it (`/api/models` has the details). */
export interface ReviewStatus {
  provider: ReviewProvider;
  name: string | null;
  adapters: string[];
  shares_chat_model: boolean;
}

export interface StatusResponse {
  version: string;
  /** The chat model. */
  llm: ProviderInfo;
  reviews: ReviewStatus;
  embedding: ProviderInfo & { dimension: number };
  database: { mode: "embedded" | "external"; ok: boolean };
  retrieval: { mode: SearchMode; top_k: number };
  limits: { max_upload_mb: number; max_files: number; max_question_chars: number };
}

// ---- Model roles (`GET /api/models`, adapters at run time). Every field the web UI reads of them is here.

/** Who writes reviews (`REVIEW_PROVIDER`); `none` turns the review writer off. */
export type ReviewProvider = "local" | "openai" | "fake" | "none";

/**
 * An adapter's evaluation (`eval.json`, from `rag finetune eval --out`) by measure: `data`,
 * `rating_consistency`, `perplexity`, `distinct_1`, `distinct_2`, `copy_rate`, `empty_rate`, and the
 * base model's `base_rating_consistency` and `base_perplexity`.
 */
export type EvalSummary = Record<string, number | string | null>;

/** The record of the training run that wrote an adapter (`run.json`, `train_log.jsonl`, `eval.json`). */
export interface AdapterRun {
  base_model: string | null;
  method: string | null;
  data: string | null;
  /** Reviews kept for training. */
  examples: number | null;
  steps: number | null;
  total_steps: number | null;
  final_loss: number | null;
  /** Null when the run did not finish. */
  finished_at: string | null;
  eval: EvalSummary | null;
}

/** A loaded LoRA adapter: the name a review request gives, its folder on the server, how it was trained. */
export interface AdapterInfo {
  name: string;
  path: string;
  /** `settings`: REVIEW_ADAPTERS, loaded at every start (not unloadable); `api`: loaded at run time. */
  origin: "settings" | "api";
  run: AdapterRun | null;
}

/** One model role: the provider, the model ("local:<base>"), how a local one is loaded (null otherwise). */
export interface ModelRole {
  provider: string;
  name: string | null;
  base_model: string | null;
  device: string | null;
  dtype: string | null;
  quantization: string | null;
}

export interface ReviewRole extends ModelRole {
  provider: ReviewProvider;
  /** False when REVIEW_PROVIDER=none. */
  writes_reviews: boolean;
  /** Adapters load and unload while the server runs (a local model). */
  loads_adapters: boolean;
  /** Chat answers come from the same loaded base, loaded once. */
  shares_chat_model: boolean;
  adapters: AdapterInfo[];
}

export interface ModelsResponse {
  chat: ModelRole;
  reviews: ReviewRole;
}

/** `POST /api/models/adapters`: load the adapter in the server's folder `path` as `name`. */
export interface AdapterLoadRequest {
  name: string;
  path: string;
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

// ---- Fine-tuning (`/api/finetune/*` and finetune jobs). Every field the web UI reads of them is here.

/** `DataReport.to_dict()`: what was read from a data set, what was kept and why the rest was dropped. */
export interface DataReport {
  data_format: string;
  rating_scale: number;
  read: number;
  kept: number;
  /** Lines dropped, by reason. */
  dropped: Record<string, number>;
  /** Reviews kept per rating ("1".."10"). */
  ratings: Record<string, number>;
}

/** A review data set stored on the server (`POST /api/finetune/datasets`). */
export interface DatasetInfo {
  id: string;
  name: string;
  source: "upload" | "path";
  format: string;
  scale: number;
  report: DataReport;
  size_bytes: number;
  created_at: string;
}

/** `POST /api/finetune/datasets` with a file already on the server. */
export interface DatasetPathRequest {
  path: string;
  name?: string;
}

/** One method's memory estimate at the requested micro-batch (`MemoryEstimate.to_dict()`, GiB). */
export interface MemoryEstimate {
  method: string;
  gradient_checkpointing: boolean;
  micro_batch: number;
  parts_gib: Record<string, number>;
  allocated_gib: number;
  required_gib: number;
}

export interface MethodPlan {
  method: string;
  trainable_params: number;
  without_checkpointing: MemoryEstimate;
  with_checkpointing: MemoryEstimate;
  /** 0 when not even one row fits. */
  max_micro_batch_without_checkpointing: number;
  max_micro_batch_with_checkpointing: number;
}

export interface PlanRecommendation {
  method: "lora" | "qlora";
  gradient_checkpointing: boolean;
  micro_batch: number;
  gradient_accumulation: number;
  reason: string;
}

/** `GET /api/finetune/plan` (`rag finetune plan --json`). */
export interface MemoryPlan {
  model: string;
  source: string;
  parameter_count: number;
  gpu_mem_gb: number;
  settings: { seq_len: number; micro_batch: number; lora_rank: number };
  methods: Record<string, MethodPlan>;
  recommendation: PlanRecommendation | null;
  notes: string[];
}

export interface PlanQuery {
  model: string;
  gpu_mem_gb: number;
  seq_len?: number;
  micro_batch?: number;
  lora_rank?: number;
}

export type OptionValue = string | number | boolean | string[] | number[] | null;

/** One recipe field of `GET /api/finetune/options`, as the start form shows it. */
export interface RecipeOption {
  name: string;
  /** `integer`, `number`, `string`, `boolean`, or a list of one (`integer[]`). */
  type: string;
  default: OptionValue;
  choices: (string | number)[] | null;
  help: string;
  group: string | null;
}

export interface RecipeOptions {
  train: RecipeOption[];
  data: RecipeOption[];
  governor: RecipeOption[];
  eval: RecipeOption[];
}

/** `POST /api/finetune/jobs`: the data sets, the recipe's fields under their own names, and groups. */
export interface FinetuneJobRequest {
  dataset_id: string;
  eval_dataset_id?: string | null;
  data_options?: Record<string, OptionValue>;
  governor?: Record<string, OptionValue>;
  eval?: Record<string, OptionValue>;
  [field: string]: OptionValue | Record<string, OptionValue> | undefined;
}

/** `POST /api/finetune/jobs/{id}/evaluate`: what to evaluate a finished job on again; unset keeps the job's own. */
export interface EvaluateJobRequest {
  eval_dataset_id?: string;
  /** Evaluation settings, as the start form's `eval` group sends them. */
  eval?: FinetuneJobRequest["eval"];
}

/** One line of the trainer's `train_log.jsonl`. */
export interface TrainMetric {
  step: number;
  loss: number;
  lr?: number;
  tokens_per_s?: number;
  elapsed_s?: number;
  epoch?: number;
}

export type GovernorReason = "user" | "schedule" | "cpu_load" | "gpu_busy" | "gpu_temperature" | "gpu_power";

export interface GovernorStatus {
  state: "running" | "paused";
  reason: GovernorReason | null;
  since: string | null;
  resumes_at: string | null;
}

export interface RatingConsistency {
  overall: number;
  by_band: Record<string, number>;
}

export interface EvalSample {
  rating: number;
  text: string;
  predicted_band: string;
}

/** One column of the eval report: the base model, base + adapter, or the real dev reviews. */
export interface EvalResult {
  rating_consistency: RatingConsistency;
  perplexity?: number;
  distinct_1: number | null;
  distinct_2: number | null;
  copy_rate: number;
  empty_rate?: number;
  samples?: EvalSample[];
}

/** `rag finetune eval --json`, stored with the job. */
export interface EvalReport {
  model: string;
  adapter: string | null;
  rating_scale: number;
  ratings: number[];
  classifier: { accuracy: number; test_size: number; train_size: number };
  results: { real: EvalResult; base: EvalResult; adapter?: EvalResult };
}

export type FinetunePhase = "queued" | "training" | "evaluating" | "done";

/** A fine-tuning job: the common job fields plus the run's curve, its governor and its results. */
export interface FinetuneJob extends JobInfo {
  kind: "finetune";
  /** The logged steps; in the event stream, only those logged since the event before. */
  metrics: TrainMetric[];
  /** Null unless it is running. */
  eta_s: number | null;
  /** Null unless it is running. */
  governor: GovernorStatus | null;
  pause_requested: boolean;
  finetune: {
    dataset_id: string;
    eval_dataset_id: string | null;
    model: string;
    method: string;
    config: Record<string, unknown>;
    phase: FinetunePhase;
    adapter_ready: boolean;
    device: string;
    eval: EvalReport | null;
    /** Why the evaluation failed, if it did (the adapter is still there). */
    eval_error: ErrorInfo | null;
    published: string[];
  };
}

export interface JobList {
  jobs: JobInfo[];
  total: number;
  next_cursor: string | null;
}
