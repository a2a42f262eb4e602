-- Schemas of the warehouse contract and the read-only analyst role.
-- psops_analyst reads curated, marts and ops.exceptions, writes nowhere,
-- and never sees per-person cost rates (they live in `confidential`).
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS curated;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS confidential;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'psops_analyst') THEN
        CREATE ROLE psops_analyst NOLOGIN;
    END IF;
END
$$;

REVOKE ALL ON SCHEMA raw, confidential FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

GRANT USAGE ON SCHEMA curated, marts, ops TO psops_analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA curated, marts TO psops_analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA curated GRANT SELECT ON TABLES TO psops_analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA marts GRANT SELECT ON TABLES TO psops_analyst;

-- Written and read back by the smoke DAG (psops_smoke) to prove the path works.
CREATE TABLE IF NOT EXISTS ops.smoke_checks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dag_run_id  text NOT NULL,
    token       text NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now()
);
