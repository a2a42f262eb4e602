-- Typed, de-duplicated business entities.
--
-- `staging` holds the latest version of every record, typed, quarantined or not:
-- the quality gates read it. `curated` holds the same columns minus quarantined
-- records: analysts read it. `staging` is internal (no grant to psops_analyst);
-- per-person cost rates live only in `confidential`.
CREATE SCHEMA IF NOT EXISTS staging;
REVOKE ALL ON SCHEMA staging FROM PUBLIC;

-- Safe casts: a malformed source value becomes NULL (and a quality rule reports it)
-- instead of failing the whole set-based load.
CREATE OR REPLACE FUNCTION staging.to_date_or_null(v text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN v ~ '^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])'
         AND substr(v, 1, 4)::int > 0
         AND substr(v, 9, 2)::int <= extract(day FROM
                 (date_trunc('month', (substr(v, 1, 7) || '-01')::date)
                  + interval '1 month - 1 day'))
        THEN substr(v, 1, 10)::date
    END
$$;

CREATE OR REPLACE FUNCTION staging.to_ts_or_null(v text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN v ~ '^\d{11,14}$' THEN to_timestamp(v::bigint / 1000.0)
        WHEN v ~ '^\d{4}-\d{2}-\d{2}([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$'
         AND staging.to_date_or_null(v) IS NOT NULL
        THEN CASE WHEN v ~ '(Z|[+-]\d{2}(:?\d{2})?)$' AND length(v) > 10
                  THEN v::timestamptz
                  ELSE (v::timestamp AT TIME ZONE 'UTC') END
    END
$$;

CREATE OR REPLACE FUNCTION staging.to_num_or_null(v jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN jsonb_typeof(v) = 'number' THEN (v #>> '{}')::numeric
        WHEN jsonb_typeof(v) = 'string' AND btrim(v #>> '{}') ~ '^[+-]?(\d+(\.\d*)?|\.\d+)$'
        THEN btrim(v #>> '{}')::numeric
    END
$$;

CREATE OR REPLACE FUNCTION staging.to_bool_or_null(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN jsonb_typeof(v) = 'boolean' THEN (v #>> '{}')::boolean
        WHEN jsonb_typeof(v) = 'string' AND lower(v #>> '{}') IN ('true', 'false')
        THEN lower(v #>> '{}')::boolean
    END
$$;

-- Every table: the entity's id (primary key), then business columns, then
-- source_updated_at / load_seq / run_id of the raw copy that won.

CREATE TABLE IF NOT EXISTS staging.companies (
    company_id        text PRIMARY KEY,
    name              text,
    domain            text,
    region            text,
    erp_customer_id   text,
    created_at        timestamptz,
    archived          boolean,
    source_updated_at timestamptz,
    load_seq          bigint NOT NULL,
    run_id            bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.deals (
    deal_id              text PRIMARY KEY,
    deal_name            text,
    amount               numeric,
    currency             text,
    deal_stage           text,
    close_date_at        timestamptz,
    company_id           text,
    billing_type         text,
    region               text,
    service_line         text,
    contract_signed_date date,
    sow_reference        text,
    psa_project_id       text,
    created_at           timestamptz,
    archived             boolean,
    source_updated_at    timestamptz,
    load_seq             bigint NOT NULL,
    run_id               bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.projects (
    project_id            text PRIMARY KEY,
    code                  text,
    name                  text,
    crm_deal_id           text,
    crm_company_id        text,
    billing_type          text,
    status                text,
    starts_on             date,
    ends_on               date,
    budget_hours          numeric,
    fee                   numeric,
    currency              text,
    region                text,
    project_manager_id    text,
    project_manager_email text,
    created_at            timestamptz,
    source_updated_at     timestamptz,
    load_seq              bigint NOT NULL,
    run_id                bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.milestones (
    milestone_id      text PRIMARY KEY,
    project_id        text,
    project_code      text,
    name              text,
    amount            numeric,
    due_on            date,
    status            text,
    completed_at      timestamptz,
    accepted_at       timestamptz,
    evidence_count    integer,
    created_at        timestamptz,
    source_updated_at timestamptz,
    load_seq          bigint NOT NULL,
    run_id            bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.assignments (
    assignment_id     text PRIMARY KEY,
    project_id        text,
    project_code      text,
    user_id           text,
    user_email        text,
    employee_id       text,
    role              text,
    starts_on         date,
    ends_on           date,
    hours_per_week    numeric,
    created_at        timestamptz,
    source_updated_at timestamptz,
    load_seq          bigint NOT NULL,
    run_id            bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.time_entries (
    time_entry_id     text PRIMARY KEY,
    spent_date        date,
    hours             numeric,
    billable          boolean,
    billable_rate     numeric,
    role              text,
    user_id           text,
    user_email        text,
    employee_id       text,
    project_id        text,
    project_code      text,
    task_id           text,
    task_name         text,
    notes             text,
    status            text,
    submitted_at      timestamptz,
    approved_at       timestamptz,
    is_billed         boolean,
    created_at        timestamptz,
    source_updated_at timestamptz,
    load_seq          bigint NOT NULL,
    run_id            bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.expenses (
    expense_id        text PRIMARY KEY,
    spent_date        date,
    total_cost        numeric,
    billable          boolean,
    category_id       text,
    category_name     text,
    has_receipt       boolean,
    receipt_file_name text,
    status            text,
    user_id           text,
    user_email        text,
    employee_id       text,
    project_id        text,
    project_code      text,
    created_at        timestamptz,
    source_updated_at timestamptz,
    load_seq          bigint NOT NULL,
    run_id            bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.change_requests (
    change_request_id text PRIMARY KEY,
    project_id        text,
    project_code      text,
    title             text,
    amount_delta      numeric,
    status            text,
    requested_at      timestamptz,
    decided_at        timestamptz,
    created_at        timestamptz,
    source_updated_at timestamptz,
    load_seq          bigint NOT NULL,
    run_id            bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.customers (
    customer_id       text PRIMARY KEY,
    company_name      text,
    crm_company_id    text,
    source_updated_at timestamptz,
    load_seq          bigint NOT NULL,
    run_id            bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.jobs (
    job_id            text PRIMARY KEY,
    project_code      text,
    company_name      text,
    customer_id       text,
    status            text,
    psa_project_id    text,
    start_date        date,
    subsidiary_id     text,
    subsidiary_name   text,
    source_updated_at timestamptz,
    load_seq          bigint NOT NULL,
    run_id            bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.billing_schedule_lines (
    billing_schedule_line_id text PRIMARY KEY,
    job_id            text,
    project_code      text,
    milestone_id      text,
    amount            numeric,
    bill_date         date,
    source_updated_at timestamptz,
    load_seq          bigint NOT NULL,
    run_id            bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.rate_cards (
    rate_card_id      text PRIMARY KEY,
    role              text,
    currency          text,
    rate              numeric,
    effective_from    date,
    effective_to      date,
    source_updated_at timestamptz,
    load_seq          bigint NOT NULL,
    run_id            bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.invoices (
    invoice_id        text PRIMARY KEY,
    tran_id           text,
    job_id            text,
    project_code      text,
    tran_date         date,
    amount            numeric,
    status            text,
    milestone_id      text,
    period_start      date,
    period_end        date,
    source_updated_at timestamptz,
    load_seq          bigint NOT NULL,
    run_id            bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.purchase_orders (
    purchase_order_id text PRIMARY KEY,
    tran_id           text,
    job_id            text,
    project_code      text,
    vendor_id         text,
    vendor_name       text,
    amount            numeric,
    status            text,
    source_updated_at timestamptz,
    load_seq          bigint NOT NULL,
    run_id            bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.employees (
    employee_id                text PRIMARY KEY,
    display_name               text,
    email                      text,
    job_title                  text,
    department                 text,
    location                   text,
    status                     text,
    hire_date                  date,
    hire_date_raw              text,
    termination_date           date,
    termination_date_raw       text,
    standard_hours_per_week    numeric,
    target_utilization_percent numeric,
    source_updated_at          timestamptz,
    load_seq                   bigint NOT NULL,
    run_id                     bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.time_off_days (
    time_off_day_id   text PRIMARY KEY,   -- '<request id>:<date>'
    request_id        text NOT NULL,
    employee_id       text,
    day               date,
    day_raw           text,
    unit              text,
    amount            numeric,
    request_status    text,
    type_name         text,
    source_updated_at timestamptz,
    load_seq          bigint NOT NULL,
    run_id            bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.holidays (
    holiday_id        text PRIMARY KEY,
    name              text,
    start_date        date,
    end_date          date,
    source_updated_at timestamptz,
    load_seq          bigint NOT NULL,
    run_id            bigint NOT NULL
);

-- PSA users resolve to HRIS employees by e-mail, case-insensitively; should two
-- employees share an e-mail, the active one with the lowest id wins
-- (rule employee.duplicate_email reports it).
CREATE OR REPLACE VIEW staging.employee_by_email AS
SELECT DISTINCT ON (lower(email)) lower(email) AS email_lower, employee_id
FROM staging.employees
WHERE email IS NOT NULL AND email <> ''
ORDER BY lower(email), (status = 'Active') DESC, employee_id;

CREATE INDEX IF NOT EXISTS staging_employees_email_idx ON staging.employees (lower(email));
CREATE INDEX IF NOT EXISTS staging_time_entries_email_idx ON staging.time_entries (lower(user_email));
CREATE INDEX IF NOT EXISTS staging_time_entries_project_idx ON staging.time_entries (project_id);

-- Curated: the same shapes, quarantined records left out.
CREATE TABLE IF NOT EXISTS curated.companies (LIKE staging.companies INCLUDING ALL);
CREATE TABLE IF NOT EXISTS curated.deals (LIKE staging.deals INCLUDING ALL);
CREATE TABLE IF NOT EXISTS curated.projects (LIKE staging.projects INCLUDING ALL);
CREATE TABLE IF NOT EXISTS curated.milestones (LIKE staging.milestones INCLUDING ALL);
CREATE TABLE IF NOT EXISTS curated.assignments (LIKE staging.assignments INCLUDING ALL);
CREATE TABLE IF NOT EXISTS curated.time_entries (LIKE staging.time_entries INCLUDING ALL);
CREATE TABLE IF NOT EXISTS curated.expenses (LIKE staging.expenses INCLUDING ALL);
CREATE TABLE IF NOT EXISTS curated.change_requests (LIKE staging.change_requests INCLUDING ALL);
CREATE TABLE IF NOT EXISTS curated.customers (LIKE staging.customers INCLUDING ALL);
CREATE TABLE IF NOT EXISTS curated.jobs (LIKE staging.jobs INCLUDING ALL);
CREATE TABLE IF NOT EXISTS curated.billing_schedule_lines (LIKE staging.billing_schedule_lines INCLUDING ALL);
CREATE TABLE IF NOT EXISTS curated.rate_cards (LIKE staging.rate_cards INCLUDING ALL);
CREATE TABLE IF NOT EXISTS curated.invoices (LIKE staging.invoices INCLUDING ALL);
CREATE TABLE IF NOT EXISTS curated.purchase_orders (LIKE staging.purchase_orders INCLUDING ALL);
CREATE TABLE IF NOT EXISTS curated.employees (LIKE staging.employees INCLUDING ALL);
CREATE TABLE IF NOT EXISTS curated.time_off_days (LIKE staging.time_off_days INCLUDING ALL);
CREATE TABLE IF NOT EXISTS curated.holidays (LIKE staging.holidays INCLUDING ALL);

-- Confidential: per-person hourly cost (HRIS customCostRate). Never granted to analysts.
CREATE TABLE IF NOT EXISTS confidential.employee_cost_rates (
    employee_id text PRIMARY KEY,
    cost_rate   numeric,
    run_id      bigint NOT NULL
);
REVOKE ALL ON confidential.employee_cost_rates FROM PUBLIC, psops_analyst;

-- Transform state: load_seq high-water mark per incrementally staged entity,
-- and one row per transform run (entity counts feed the critical volume gate).
CREATE TABLE IF NOT EXISTS ops.transform_watermarks (
    entity        text PRIMARY KEY,
    last_load_seq bigint NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS ops.transform_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    as_of         date NOT NULL,
    dag_run_id    text,
    status        text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    staged_counts jsonb,
    curated_counts jsonb,
    summary       text,
    error         text
);

GRANT SELECT ON ALL TABLES IN SCHEMA curated TO psops_analyst;
