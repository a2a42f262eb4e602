-- The business's own words and groupings, kept in the warehouse so that the UI, the
-- alert digest, the run summaries and analysts all read the same thing:
--   reference.office_regions    which region an HRIS office belongs to
--   reference.blocking_reasons  title, owner role and next action of each blocking reason
--   reference.erp_subsidiaries  the ERP subsidiary of each region (where new ERP jobs go)
--   marts.employee_regions      each employee's region (office -> region, else the office)
--   marts.billing_totals        items and amount per as-of date, status and currency
--   marts.billing_totals_by_project   the same per project, with its region and billing type
--   marts.billing_blocked_by_reason   blocked items and amount per reason and currency
--   marts.billing_blocked_by_reason_and_project   the same per project
--   marts.billing_blocker_owners      each blocking record with the person who must act
-- Change a region or a reason's owner with an UPDATE here (or a new migration), not in code.
-- Who resolved an exception: the check's run that no longer found the record failing
-- (psops.exception_queue fills it).
ALTER TABLE ops.exceptions ADD COLUMN IF NOT EXISTS resolved_by text;

CREATE SCHEMA IF NOT EXISTS reference;
GRANT USAGE ON SCHEMA reference TO psops_analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA reference GRANT SELECT ON TABLES TO psops_analyst;

-- HRIS has an office per person, not a region; projects and ERP subsidiaries use
-- NA / EMEA / APAC. An office missing here is its own group.
CREATE TABLE IF NOT EXISTS reference.office_regions (
    office text PRIMARY KEY,
    region text NOT NULL
);
INSERT INTO reference.office_regions (office, region) VALUES
    ('New York', 'NA'), ('Toronto', 'NA'), ('London', 'EMEA'), ('Berlin', 'EMEA'),
    ('Singapore', 'APAC'), ('Sydney', 'APAC')
ON CONFLICT (office) DO NOTHING;

-- The ERP subsidiary a region's new ERP jobs are created in (the write-back's deal
-- set-up and corrections). A deal whose region is missing here cannot be set up.
CREATE TABLE IF NOT EXISTS reference.erp_subsidiaries (
    region        text PRIMARY KEY,
    subsidiary_id text NOT NULL
);
INSERT INTO reference.erp_subsidiaries (region, subsidiary_id) VALUES
    ('NA', '1'), ('EMEA', '2'), ('APAC', '3')
ON CONFLICT (region) DO NOTHING;

-- owner_role decides who is chased for a blocking record (marts.billing_blocker_owners):
--   project_manager  the project's manager
--   author_or_pm     the record's author while it is a draft, else the project manager
--   author           the record's author (else the project manager)
--   finance_erp      finance / the ERP administrators
CREATE TABLE IF NOT EXISTS reference.blocking_reasons (
    reason     text PRIMARY KEY,
    title      text NOT NULL,
    owner_role text NOT NULL CHECK (owner_role IN
                   ('project_manager', 'author_or_pm', 'author', 'finance_erp')),
    action     text NOT NULL
);
INSERT INTO reference.blocking_reasons (reason, title, owner_role, action) VALUES
    ('MILESTONE_NOT_ACCEPTED', 'Milestone not accepted by the client', 'project_manager',
     'Project manager: get the client''s acceptance recorded in the PSA'),
    ('MISSING_EVIDENCE', 'No evidence document on the milestone', 'project_manager',
     'Project manager: upload the sign-off / evidence to the milestone'),
    ('NO_ACTIVE_PROJECT_CODE', 'No active ERP job for the project code', 'finance_erp',
     'Finance (ERP admin): create or re-activate the project''s job'),
    ('NO_BILLING_SCHEDULE', 'No ERP billing schedule line for the milestone', 'finance_erp',
     'Finance (billing): add the milestone to the ERP billing schedule'),
    ('BILLING_AMOUNT_MISMATCH', 'ERP billing line amount differs from the milestone',
     'project_manager', 'Finance (billing) with the project manager: align the amounts'),
    ('PENDING_CHANGE_REQUEST', 'A change request is still pending', 'project_manager',
     'Project manager: get the change request decided'),
    ('UNAPPROVED_PURCHASE_ORDER', 'A purchase order is pending approval or rejected',
     'finance_erp', 'Procurement / finance: approve or replace the purchase order'),
    ('UNAPPROVED_TIME', 'Billable time not approved (draft or submitted)', 'author_or_pm',
     'Consultant submits drafts; project manager approves submitted time'),
    ('UNAPPROVED_EXPENSES', 'Billable expense not approved (draft or submitted)', 'author_or_pm',
     'Consultant submits; project manager approves the expense'),
    ('MISSING_RECEIPT', 'Approved billable expense without a receipt', 'author',
     'Consultant: attach the receipt to the expense'),
    ('RATE_MISMATCH', 'Billed rate differs from the rate card (or no rate card)',
     'project_manager', 'Finance with the project manager: fix the entry''s rate or the rate card')
ON CONFLICT (reason) DO NOTHING;

CREATE OR REPLACE VIEW marts.employee_regions AS
SELECT e.employee_id, e.location AS office,
       coalesce(r.region, e.location, 'unknown') AS region
FROM curated.employees e
LEFT JOIN reference.office_regions r ON r.office = e.location;

-- The per-project views carry what the finance page filters on (region, project, billing
-- type); the as-of-wide views add them up.
CREATE OR REPLACE VIEW marts.billing_totals_by_project AS
SELECT b.as_of, b.project_code, p.region, b.billing_type, b.status,
       coalesce(b.currency, '?') AS currency, count(*) AS items, sum(b.amount) AS amount
FROM marts.billing_readiness b
LEFT JOIN curated.projects p ON p.project_id = b.project_id
GROUP BY b.as_of, b.project_code, p.region, b.billing_type, b.status, coalesce(b.currency, '?');

CREATE OR REPLACE VIEW marts.billing_totals AS
SELECT as_of, status, currency, sum(items)::bigint AS items, sum(amount) AS amount
FROM marts.billing_totals_by_project
GROUP BY as_of, status, currency;

-- An item with several reasons counts under each of them. A reason missing from
-- reference.blocking_reasons is its own title.
CREATE OR REPLACE VIEW marts.billing_blocked_by_reason_and_project AS
SELECT b.as_of, b.project_code, p.region, b.billing_type, u.reason,
       coalesce(r.title, u.reason) AS title, r.owner_role,
       coalesce(r.action, 'see the blocking records') AS action,
       coalesce(b.currency, '?') AS currency, count(*) AS items, sum(b.amount) AS amount
FROM marts.billing_readiness b
CROSS JOIN LATERAL unnest(b.blocking_reasons) AS u(reason)
LEFT JOIN reference.blocking_reasons r ON r.reason = u.reason
LEFT JOIN curated.projects p ON p.project_id = b.project_id
WHERE b.status = 'blocked'
GROUP BY b.as_of, b.project_code, p.region, b.billing_type, u.reason, r.title, r.owner_role,
         r.action, coalesce(b.currency, '?');

CREATE OR REPLACE VIEW marts.billing_blocked_by_reason AS
SELECT as_of, reason, title, owner_role, action, currency,
       sum(items)::bigint AS items, sum(amount) AS amount
FROM marts.billing_blocked_by_reason_and_project
GROUP BY as_of, reason, title, owner_role, action, currency;

-- Each blocking record with the person to chase (lower-case e-mail, or a role).
CREATE OR REPLACE VIEW marts.billing_blocker_owners AS
SELECT b.as_of, b.project_code, b.project_id, b.item_type, b.item_id, b.reason,
       b.blocking_entity, b.blocking_record_id, b.detail,
       coalesce(r.title, b.reason) AS title, r.owner_role,
       coalesce(te.user_email, x.user_email) AS person_email,
       coalesce(te.status, x.status) AS record_status,
       coalesce(te.spent_date, x.spent_date) AS spent_date,
       te.hours, x.total_cost,
       CASE
           WHEN r.owner_role = 'finance_erp' THEN 'finance / ERP'
           WHEN r.owner_role = 'author_or_pm' AND coalesce(te.status, x.status) = 'draft'
                AND nullif(coalesce(te.user_email, x.user_email), '') IS NOT NULL
               THEN lower(coalesce(te.user_email, x.user_email))
           WHEN r.owner_role = 'author' AND nullif(coalesce(te.user_email, x.user_email), '') IS NOT NULL
               THEN lower(coalesce(te.user_email, x.user_email))
           ELSE coalesce(lower(nullif(p.project_manager_email, '')), 'project manager (none recorded)')
       END AS who_must_act
FROM marts.billing_readiness_blockers b
LEFT JOIN reference.blocking_reasons r ON r.reason = b.reason
LEFT JOIN curated.projects p ON p.project_id = b.project_id
LEFT JOIN curated.time_entries te
  ON b.blocking_entity = 'time_entry' AND te.time_entry_id = b.blocking_record_id
LEFT JOIN curated.expenses x
  ON b.blocking_entity = 'expense' AND x.expense_id = b.blocking_record_id;

GRANT SELECT ON ALL TABLES IN SCHEMA reference TO psops_analyst;
GRANT SELECT ON marts.employee_regions, marts.billing_totals, marts.billing_totals_by_project,
                marts.billing_blocked_by_reason, marts.billing_blocked_by_reason_and_project,
                marts.billing_blocker_owners TO psops_analyst;
