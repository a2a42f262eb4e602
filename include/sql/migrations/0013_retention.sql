-- Maintenance (psops_maintenance): one row per run of a maintenance job, with what it
-- deleted and kept per table. The raw retention (kind 'raw_retention') deletes a raw
-- record version loaded before `cutoff` (now minus `retention_days`) unless it is its
-- record's latest (or a copy with an unreadable update time loaded after it, which
-- keeps the record quarantined); `tables` holds {"raw.<table>": {"deleted": n,
-- "kept": m}}, filled table by table, so a run that died part-way still says what it did.
--   running -> succeeded | failed
CREATE TABLE IF NOT EXISTS ops.maintenance_runs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('raw_retention')),
    dag_run_id      text,
    status          text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    retention_days  integer NOT NULL CHECK (retention_days >= 0),
    cutoff          timestamptz NOT NULL,
    tables          jsonb NOT NULL DEFAULT '{}'::jsonb,
    deleted         bigint NOT NULL DEFAULT 0,
    kept            bigint NOT NULL DEFAULT 0,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    error           text
);
CREATE INDEX IF NOT EXISTS maintenance_runs_kind_idx
    ON ops.maintenance_runs (kind, started_at DESC);
