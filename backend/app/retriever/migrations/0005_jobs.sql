-- Background jobs (ingest; fine-tuning later on the same table): their state, progress and
-- results, kept here so that they outlive any connection and any worker. The queue library's
-- own tables (procrastinate_*) hold only its bookkeeping: which worker runs which job.

CREATE TABLE jobs (
    id text PRIMARY KEY,
    -- Order of creation, for newest-first pages.
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    kind text NOT NULL,
    status text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    -- What to do (the kind's own parameters).
    payload jsonb NOT NULL,
    -- What is shown: done and total. "settled" is the progress of the items whose results are
    -- stored; a worker that takes the job over starts again from there.
    progress jsonb NOT NULL,
    settled jsonb NOT NULL,
    results jsonb NOT NULL DEFAULT '[]'::jsonb,
    metrics jsonb NOT NULL DEFAULT jsonb_build_object(),
    error jsonb,
    cancel_requested boolean NOT NULL DEFAULT false,
    -- The queue library's id of the job, to take a job that has not started off the queue.
    queue_job_id bigint,
    -- How many times a worker started the job (more than once after a takeover).
    runs integer NOT NULL DEFAULT 0,
    -- The run that holds the job: only it writes progress and results. A worker taken for dead
    -- that was only slow finds another run's lease and stops.
    lease text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_kind ON jobs (kind, seq);

-- The files of an ingest job until their results are stored: workers on other machines read
-- them from here. A file refused before the job ran has no data, only its result.
CREATE TABLE job_files (
    job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    position integer NOT NULL,
    filename text NOT NULL,
    data bytea,
    result jsonb,
    PRIMARY KEY (job_id, position)
);
-- Uploads are mostly compressed already (PDF, office zips); storing them as they are saves the
-- CPU of compressing them again.
ALTER TABLE job_files ALTER COLUMN data SET STORAGE EXTERNAL;

-- Every change of a job is announced, so that whoever follows it (a waiting upload, an event
-- stream) reads it when it changes instead of polling.
CREATE FUNCTION notify_job_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rag_jobs', TG_TABLE_SCHEMA || '.' || NEW.id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER jobs_changed AFTER INSERT OR UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION notify_job_changed();
