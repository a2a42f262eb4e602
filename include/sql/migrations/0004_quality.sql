-- Data quality: the exception queue (contract lifecycle), quarantine, GX results.
CREATE TABLE IF NOT EXISTS ops.exceptions (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id        text NOT NULL,
    severity       text NOT NULL CHECK (severity IN ('error', 'warning')),
    source_system  text NOT NULL CHECK (source_system IN ('crm', 'psa', 'erp', 'hris')),
    entity         text NOT NULL,
    record_key     text NOT NULL,
    details        jsonb NOT NULL DEFAULT '{}'::jsonb,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    resolved_at    timestamptz,
    times_seen     integer NOT NULL DEFAULT 1,
    first_as_of    date,
    last_as_of     date,
    last_transform_run_id bigint
);
-- One open row per (rule_id, entity, record_key), however often it is seen.
CREATE UNIQUE INDEX IF NOT EXISTS exceptions_one_open_idx
    ON ops.exceptions (rule_id, entity, record_key) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS exceptions_entity_open_idx
    ON ops.exceptions (entity, record_key) WHERE status = 'open' AND severity = 'error';

-- Records currently quarantined: an open exception of severity error.
CREATE OR REPLACE VIEW ops.quarantined_records AS
SELECT DISTINCT entity, record_key
FROM ops.exceptions
WHERE status = 'open' AND severity = 'error';

-- One row per expectation per GX validation (results of every run are kept).
CREATE TABLE IF NOT EXISTS ops.quality_results (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transform_run_id  bigint,
    as_of             date NOT NULL,
    suite             text NOT NULL,
    rule_id           text,
    severity          text,
    expectation_type  text NOT NULL,
    success           boolean NOT NULL,
    element_count     bigint,
    unexpected_count  bigint,
    partial_unexpected jsonb,
    sql_failing_count bigint,
    validated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS quality_results_run_idx ON ops.quality_results (transform_run_id);

GRANT SELECT ON ops.exceptions TO psops_analyst;
