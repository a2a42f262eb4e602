-- Margin at cost is for finance.
--   psops_finance (NOLOGIN) reads what psops_analyst reads (it is a member), the
--   per-person cost rates in `confidential`, and every row of marts.project_margin.
--   psops_analyst sees a project-month of marts.project_margin only when at least 3
--   people's hours are in its cost (`contributors`): with fewer, cost / hours would
--   give away a person's cost rate. The threshold lives in the policy below, only.
-- The warehouse owner writes the marts and owns the table: row level security does
-- not apply to it (no FORCE). Idempotent.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'psops_finance') THEN
        CREATE ROLE psops_finance NOLOGIN;
    END IF;
    IF NOT pg_has_role('psops_finance', 'psops_analyst', 'MEMBER') THEN
        GRANT psops_analyst TO psops_finance;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA confidential TO psops_finance;
GRANT SELECT ON ALL TABLES IN SCHEMA confidential TO psops_finance;
ALTER DEFAULT PRIVILEGES IN SCHEMA confidential GRANT SELECT ON TABLES TO psops_finance;

-- People whose hours are costed (they have an HRIS cost rate) in the project-month.
-- Rows built before this migration count 0 (finance only) until the next transform.
ALTER TABLE marts.project_margin ADD COLUMN IF NOT EXISTS contributors integer NOT NULL DEFAULT 0;

ALTER TABLE marts.project_margin ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS project_margin_analyst ON marts.project_margin;
CREATE POLICY project_margin_analyst ON marts.project_margin
    FOR SELECT TO psops_analyst USING (contributors >= 3);
DROP POLICY IF EXISTS project_margin_finance ON marts.project_margin;
CREATE POLICY project_margin_finance ON marts.project_margin
    FOR SELECT TO psops_finance USING (true);

-- The owner may act as psops_finance with SET ROLE, as 0007 does for psops_analyst
-- (PostgreSQL 16+: creating a role gives its creator ADMIN but not SET).
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN;
    END IF;
    IF current_setting('server_version_num')::int >= 160000 THEN
        IF NOT pg_has_role(current_user, 'psops_finance', 'SET') THEN
            EXECUTE format('GRANT psops_finance TO %I WITH INHERIT FALSE, SET TRUE', current_user);
        END IF;
    ELSIF NOT pg_has_role(current_user, 'psops_finance', 'MEMBER') THEN
        EXECUTE format('GRANT psops_finance TO %I', current_user);
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE EXCEPTION 'psops: role % may not grant itself psops_finance (it needs ADMIN on that role, which creating it gives)', current_user
        USING HINT = format('as a superuser: GRANT psops_finance TO %I WITH SET TRUE (PostgreSQL 16+) or GRANT psops_finance TO %I', current_user, current_user);
END
$$;
