-- Ingest hardening:
--   * a run whose process ended without recording an outcome (killed, host lost) is
--     marked `abandoned` by the next run of the same stream (or the next transform),
--     which holds the run lock;
--   * records a stream cannot load as they are (a NUL character, invalid JSON such
--     as NaN / Infinity / 1e400 / a lone surrogate escape, not a JSON object, no
--     primary key) go to ops.ingest_rejects with the reason; the rest of the stream
--     loads, and each reject raises an exception row (rule <entity>.ingest_rejected)
--     whose details name the reject row;
--   * ops.ingest_runs counts the records rejected by each run.
ALTER TABLE ops.ingest_runs DROP CONSTRAINT IF EXISTS ingest_runs_status_check;
ALTER TABLE ops.ingest_runs ADD CONSTRAINT ingest_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'abandoned'));
ALTER TABLE ops.transform_runs DROP CONSTRAINT IF EXISTS transform_runs_status_check;
ALTER TABLE ops.transform_runs ADD CONSTRAINT transform_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'abandoned'));

ALTER TABLE ops.ingest_runs ADD COLUMN IF NOT EXISTS rejected integer NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS ops.ingest_rejects (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ingest_run_id bigint NOT NULL REFERENCES ops.ingest_runs (id),
    system        text NOT NULL,
    stream        text NOT NULL,
    record_key    text,          -- the record's primary key, when it has one
    reason        text NOT NULL,
    raw_text      text NOT NULL, -- the record as JSON text, NUL characters escaped
    rejected_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ingest_rejects_run_idx ON ops.ingest_rejects (ingest_run_id);
CREATE INDEX IF NOT EXISTS ingest_rejects_record_idx
    ON ops.ingest_rejects (system, stream, record_key);
