/** Data sets, plans and fine-tuning jobs as the backend answers them, for the fine-tuning tests. */
import type { DatasetInfo, EvalReport, FinetuneJob, MemoryPlan, TrainMetric } from "../lib/types";

export const BASE = "K-intelligence/Midm-2.0-Mini-Instruct";

export function dataset(id: string, name: string, change: Partial<DatasetInfo> = {}): DatasetInfo {
  return {
    id,
    name,
    source: "upload",
    format: "nsmc-tsv",
    scale: 10,
    report: {
      data_format: "nsmc-tsv",
      rating_scale: 10,
      read: 504,
      kept: 500,
      dropped: { duplicate: 3, empty: 1 },
      ratings: { "1": 60, "2": 20, "3": 20, "4": 20, "5": 30, "6": 30, "7": 40, "8": 60, "9": 60, "10": 160 },
    },
    size_bytes: 40_960,
    created_at: "2026-12-01T09:00:00Z",
    ...change,
  };
}

const estimate = (method: string, checkpointing: boolean, required: number) => ({
  method,
  gradient_checkpointing: checkpointing,
  micro_batch: 4,
  parts_gib: { weights: 4.29 },
  allocated_gib: required - 1,
  required_gib: required,
});

export function plan(gpuGb: number): MemoryPlan {
  return {
    model: BASE,
    source: "known-config table",
    parameter_count: 2_305_517_312,
    gpu_mem_gb: gpuGb,
    settings: { seq_len: 512, micro_batch: 4, lora_rank: 16 },
    methods: {
      full: {
        method: "full",
        trainable_params: 2_305_517_312,
        without_checkpointing: estimate("full", false, 53.68),
        with_checkpointing: estimate("full", true, 45.36),
        max_micro_batch_without_checkpointing: 0,
        max_micro_batch_with_checkpointing: 0,
      },
      lora: {
        method: "lora",
        trainable_params: 28_114_944,
        without_checkpointing: estimate("lora", false, 22.91),
        with_checkpointing: estimate("lora", true, 8.03),
        max_micro_batch_without_checkpointing: 0,
        max_micro_batch_with_checkpointing: 3,
      },
    },
    recommendation: {
      method: "lora",
      gradient_checkpointing: true,
      micro_batch: 2,
      gradient_accumulation: 2,
      reason: "fits with activations recomputed in the backward pass",
    },
    notes: [],
  };
}

export const metric = (step: number, loss: number): TrainMetric => ({
  step,
  loss,
  lr: 2e-4,
  tokens_per_s: 1000 + step * 10,
  elapsed_s: step * 2,
  epoch: step / 100,
});

export const EVAL: EvalReport = {
  model: BASE,
  adapter: "/srv/finetune/jobs/j1/adapter",
  rating_scale: 10,
  ratings: [1, 5, 10],
  classifier: { accuracy: 0.81, test_size: 2000, train_size: 30000 },
  results: {
    real: {
      rating_consistency: { overall: 0.8, by_band: { negative: 0.85, neutral: 0.5, positive: 0.9 } },
      distinct_1: 0.61,
      distinct_2: 0.9,
      copy_rate: 0.02,
    },
    base: {
      rating_consistency: { overall: 0.4, by_band: { negative: 0.3, neutral: 0.2, positive: 0.7 } },
      perplexity: 18.5,
      distinct_1: 0.4,
      distinct_2: 0.7,
      copy_rate: 0,
      empty_rate: 0,
      samples: [{ rating: 1, text: "그냥 그래요", predicted_band: "neutral" }],
    },
    adapter: {
      rating_consistency: { overall: 0.86, by_band: { negative: 0.9, neutral: 0.7, positive: 0.95 } },
      perplexity: 9.25,
      distinct_1: 0.55,
      distinct_2: 0.85,
      copy_rate: 0.01,
      empty_rate: 0,
      samples: [{ rating: 1, text: "시간 아까운 영화", predicted_band: "negative" }],
    },
  },
};

export function finetuneJob(id: string, change: Partial<FinetuneJob> = {}): FinetuneJob {
  return {
    id,
    kind: "finetune",
    status: "running",
    progress: { done: 0, total: 12 },
    results: [],
    error: null,
    created_at: "2026-12-01T09:05:00Z",
    updated_at: "2026-12-01T09:05:00Z",
    metrics: [],
    eta_s: 90,
    governor: { state: "running", reason: null, since: null, resumes_at: null },
    pause_requested: false,
    finetune: {
      dataset_id: "ds1",
      eval_dataset_id: null,
      model: BASE,
      method: "lora",
      config: {},
      device: "auto",
      phase: "training",
      adapter_ready: false,
      eval: null,
      eval_error: null,
      published: [],
    },
    ...change,
  };
}
