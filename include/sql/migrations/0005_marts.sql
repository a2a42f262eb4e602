-- Marts of the warehouse contract. Every table keeps its rows per as_of; a run
-- replaces the rows of its own as-of date only.
CREATE TABLE IF NOT EXISTS marts.utilization_weekly (
    as_of              date NOT NULL,
    employee_id        text NOT NULL,
    email              text,
    week_start         date NOT NULL,
    capacity_hours     numeric NOT NULL,
    billable_hours     numeric NOT NULL,
    nonbillable_hours  numeric NOT NULL,
    utilization        numeric,
    target_utilization numeric,
    PRIMARY KEY (as_of, employee_id, week_start)
);

CREATE TABLE IF NOT EXISTS marts.timesheet_compliance (
    as_of        date NOT NULL,
    employee_id  text NOT NULL,
    week_start   date NOT NULL,
    expected     boolean NOT NULL,
    hours_logged numeric NOT NULL,
    status       text NOT NULL CHECK (status IN ('not_expected', 'open', 'missing', 'on_time', 'late')),
    PRIMARY KEY (as_of, employee_id, week_start)
);

CREATE TABLE IF NOT EXISTS marts.billing_readiness (
    as_of            date NOT NULL,
    project_code     text NOT NULL,
    billing_type     text NOT NULL,
    item_type        text NOT NULL CHECK (item_type IN ('milestone', 'period')),
    item_id          text NOT NULL,
    amount           numeric(14, 2) NOT NULL,
    status           text NOT NULL CHECK (status IN ('invoiced', 'not_due', 'ready', 'blocked')),
    blocking_reasons text[] NOT NULL DEFAULT '{}',
    project_id       text NOT NULL,
    currency         text,
    PRIMARY KEY (as_of, project_id, item_type, item_id)
);

-- Traceability: each blocking reason of a blocked item, with the record(s) behind it.
CREATE TABLE IF NOT EXISTS marts.billing_readiness_blockers (
    as_of             date NOT NULL,
    project_code      text NOT NULL,
    project_id        text NOT NULL,
    item_type         text NOT NULL,
    item_id           text NOT NULL,
    reason            text NOT NULL,
    blocking_entity   text NOT NULL,
    blocking_record_id text NOT NULL,
    detail            text,
    PRIMARY KEY (as_of, project_id, item_type, item_id, reason, blocking_entity, blocking_record_id)
);

CREATE TABLE IF NOT EXISTS marts.process_kpis (
    as_of       date NOT NULL,
    kpi         text NOT NULL,
    value       numeric,
    numerator   numeric,
    denominator numeric,
    PRIMARY KEY (as_of, kpi)
);

-- Project-level revenue (bill rates) and cost (HRIS cost rates): no per-person rate shown.
CREATE TABLE IF NOT EXISTS marts.project_margin (
    as_of                   date NOT NULL,
    project_id              text NOT NULL,
    project_code            text,
    billing_type            text,
    currency                text,
    month_start             date NOT NULL,
    hours                   numeric NOT NULL,
    billable_hours          numeric NOT NULL,
    revenue                 numeric(14, 2) NOT NULL,
    cost                    numeric(14, 2) NOT NULL,
    margin                  numeric(14, 2) NOT NULL,
    margin_pct              numeric,
    hours_without_cost_rate numeric NOT NULL,
    PRIMARY KEY (as_of, project_id, month_start)
);

GRANT SELECT ON ALL TABLES IN SCHEMA marts TO psops_analyst;
