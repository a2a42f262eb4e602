-- Billable items for %(as_of)s with their stage before the ready/blocked decision
-- (temporary). A project's ERP jobs are the jobs whose entityId is its code.

CREATE TEMP TABLE project_jobs ON COMMIT DROP AS
SELECT p.project_id, j.job_id, j.status
FROM curated.projects p
JOIN curated.jobs j ON j.project_code = p.code;

-- Fixed-fee: one item per milestone.
--   invoiced : a non-voided invoice has milestoneExternalId = the milestone id
--   not_due  : due_on after as_of and not accepted on or before as_of
-- Time and materials: one item per project and month with a billable, non-rejected
-- entry, months starting on or before as_of.
--   amount   = sum(hours x billable_rate) of approved billable entries (no rate adds 0)
--            + sum(total_cost) of approved billable expenses of the month
--   invoiced : a non-voided invoice for the project's job has periodStart = month start
--   not_due  : the month ends on or after as_of
CREATE TEMP TABLE billing_items ON COMMIT DROP AS
WITH milestone_items AS (
    SELECT p.project_id, p.code AS project_code, p.billing_type, p.currency,
           'milestone'::text AS item_type, m.milestone_id AS item_id,
           m.amount,
           NULL::date AS month_start,
           (m.status = 'accepted'
            AND (m.accepted_at IS NULL
                 OR (m.accepted_at AT TIME ZONE 'UTC')::date <= %(as_of)s::date)) AS accepted_by_as_of,
           EXISTS (SELECT 1 FROM curated.invoices i
                   WHERE i.milestone_id = m.milestone_id
                     AND i.status IS DISTINCT FROM 'voided') AS invoiced,
           m.due_on
    FROM curated.projects p
    JOIN curated.milestones m ON m.project_id = p.project_id
    WHERE p.billing_type = 'fixed_fee'
),
-- one pass over the time entries: the months with a billable, non-rejected entry and
-- the amount of their approved ones (approved entries are among the non-rejected)
tm_time AS (
    SELECT te.project_id,
           date_trunc('month', te.spent_date)::date AS month_start,
           sum(te.hours * coalesce(te.billable_rate, 0)) FILTER (WHERE te.status = 'approved')
             AS time_amount
    FROM curated.time_entries te
    WHERE te.billable
      AND te.status <> 'rejected'
      AND date_trunc('month', te.spent_date)::date <= %(as_of)s::date
    GROUP BY te.project_id, date_trunc('month', te.spent_date)::date
),
tm_expenses AS (
    SELECT x.project_id, date_trunc('month', x.spent_date)::date AS month_start,
           sum(x.total_cost) AS expense_amount
    FROM curated.expenses x
    WHERE x.billable AND x.status = 'approved'
    GROUP BY x.project_id, date_trunc('month', x.spent_date)::date
),
tm_items AS (
    SELECT p.project_id, p.code AS project_code, p.billing_type, p.currency,
           'period'::text AS item_type, to_char(t.month_start, 'YYYY-MM') AS item_id,
           coalesce(t.time_amount, 0) + coalesce(x.expense_amount, 0) AS amount,
           t.month_start,
           -- on the project's job only: an invoice that merely names the code (job
           -- refName) on another job is invoice.code_on_other_job, for finance
           EXISTS (SELECT 1 FROM curated.invoices i
                   JOIN project_jobs pj ON pj.job_id = i.job_id AND pj.project_id = t.project_id
                   WHERE i.period_start = t.month_start
                     AND i.status IS DISTINCT FROM 'voided') AS invoiced
    FROM tm_time t
    JOIN curated.projects p ON p.project_id = t.project_id
    LEFT JOIN tm_expenses x ON x.project_id = t.project_id AND x.month_start = t.month_start
    WHERE p.billing_type = 'time_and_materials'
)
SELECT project_id, project_code, billing_type, currency, item_type, item_id,
       round(amount, 2) AS amount, month_start, accepted_by_as_of,
       CASE WHEN invoiced THEN 'invoiced'
            WHEN due_on > %(as_of)s::date AND NOT accepted_by_as_of THEN 'not_due'
            ELSE 'evaluate' END AS stage
FROM milestone_items
UNION ALL
SELECT project_id, project_code, billing_type, currency, item_type, item_id,
       round(amount, 2), month_start, NULL,
       CASE WHEN invoiced THEN 'invoiced'
            WHEN (month_start + interval '1 month - 1 day')::date >= %(as_of)s::date THEN 'not_due'
            ELSE 'evaluate' END
FROM tm_items;
