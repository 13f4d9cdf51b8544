-- Fine-tuning in the app: review data sets to train on, and what a training job reports while
-- it runs. Training jobs themselves are rows of "jobs" (kind 'finetune').

-- A data set: a review file uploaded to the server (kept under the server's fine-tuning folder,
-- deleted with the row) or one named by its path on the server (left where it is).
CREATE TABLE finetune_datasets (
    id text PRIMARY KEY,
    name text NOT NULL,
    -- 'upload' or 'path'.
    source text NOT NULL CHECK (source IN ('upload', 'path')),
    path text NOT NULL,
    format text NOT NULL,
    scale integer NOT NULL,
    -- Reviews per rating and dropped lines by reason, as rag finetune train reads the file.
    report jsonb NOT NULL,
    size_bytes bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A job asked to pause (by its owner) stays paused, across restarts, until asked to resume.
ALTER TABLE jobs ADD COLUMN pause_requested boolean NOT NULL DEFAULT false;

-- One row per logged training step (loss, tokens/s, ...), appended as the trainer logs them;
-- a job resumed from a checkpoint replaces the steps after it.
CREATE TABLE job_metrics (
    job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    step integer NOT NULL,
    entry jsonb NOT NULL,
    PRIMARY KEY (job_id, step)
);
