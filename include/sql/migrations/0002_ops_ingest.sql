-- Pipeline state for ingestion: one row per stream run, and the watermark
-- of each stream (advanced in the same transaction as the load).
CREATE TABLE IF NOT EXISTS ops.ingest_runs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dag_id           text NOT NULL,
    dag_run_id       text NOT NULL,
    system           text NOT NULL CHECK (system IN ('crm', 'psa', 'erp', 'hris')),
    stream           text NOT NULL,
    mode             text NOT NULL CHECK (mode IN ('incremental', 'snapshot')),
    status           text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    window_start     timestamptz,
    window_end       timestamptz,
    watermark_before timestamptz,
    watermark_after  timestamptz,
    pages            integer NOT NULL DEFAULT 0,
    records          bigint  NOT NULL DEFAULT 0,
    requests         integer NOT NULL DEFAULT 0,
    retries          integer NOT NULL DEFAULT 0,
    throttled        integer NOT NULL DEFAULT 0,
    failed_requests  integer NOT NULL DEFAULT 0,
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    duration_s       numeric(12, 3),
    error            text
);
CREATE INDEX IF NOT EXISTS ingest_runs_stream_idx
    ON ops.ingest_runs (system, stream, status, finished_at DESC);

CREATE TABLE IF NOT EXISTS ops.watermarks (
    system      text NOT NULL,
    stream      text NOT NULL,
    watermark   timestamptz NOT NULL,
    run_id      bigint NOT NULL REFERENCES ops.ingest_runs (id),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (system, stream)
);
