-- marts.process_kpis for %(as_of)s: the eight KPIs of the warehouse contract.
-- Medians: percentile_cont(0.5) (the mean of the two middle values for an even count).
-- "Complete week": its Sunday (week_start + 6) is before as_of; the last 4 of them.
INSERT INTO marts.process_kpis (as_of, kpi, value, numerator, denominator)
WITH complete_weeks AS (
    SELECT (date_trunc('week', %(as_of)s::date)::date - 7 * n) AS week_start
    FROM generate_series(1, 4) AS n
    -- the as-of week is complete only when as_of is after its Sunday, which never
    -- happens; so the last 4 complete weeks are the 4 weeks before the as-of week
),
launch AS (
    SELECT (min(p.created_at AT TIME ZONE 'UTC')::date - d.contract_signed_date) AS days
    FROM curated.deals d
    JOIN curated.projects p ON p.crm_deal_id = d.deal_id
    WHERE d.deal_stage = 'closedwon' AND d.contract_signed_date IS NOT NULL
      AND p.created_at IS NOT NULL
    GROUP BY d.deal_id, d.contract_signed_date
),
milestone_invoices AS (
    SELECT m.milestone_id,
           (m.accepted_at AT TIME ZONE 'UTC')::date AS accepted_on,
           min(i.tran_date) AS invoiced_on
    FROM curated.milestones m
    JOIN curated.invoices i ON i.milestone_id = m.milestone_id
                           AND i.status IS DISTINCT FROM 'voided'
    WHERE m.accepted_at IS NOT NULL
    GROUP BY m.milestone_id, m.accepted_at
),
compliance AS (
    SELECT count(*) FILTER (WHERE c.status = 'on_time') AS on_time,
           count(*) FILTER (WHERE c.status IN ('on_time', 'late', 'missing')) AS counted
    FROM marts.timesheet_compliance c
    WHERE c.as_of = %(as_of)s::date
      AND c.week_start IN (SELECT week_start FROM complete_weeks)
),
utilization AS (
    SELECT sum(u.billable_hours) AS billable, sum(u.capacity_hours) AS capacity
    FROM marts.utilization_weekly u
    WHERE u.as_of = %(as_of)s::date
      AND u.week_start IN (SELECT week_start FROM complete_weeks)
),
readiness AS (
    SELECT coalesce(sum(amount) FILTER (WHERE status = 'ready'), 0)   AS ready,
           coalesce(sum(amount) FILTER (WHERE status = 'blocked'), 0) AS blocked
    FROM marts.billing_readiness
    WHERE as_of = %(as_of)s::date
),
latest_ingest_runs AS (
    -- the most recent run (dag_run_id) of each ingest DAG, by started_at
    SELECT DISTINCT ON (dag_id) dag_id, dag_run_id
    FROM ops.ingest_runs
    WHERE dag_id LIKE 'psops\_ingest\_%%'
    ORDER BY dag_id, started_at DESC, id DESC
),
requests AS (
    SELECT sum(r.failed_requests) AS failed, sum(r.requests) AS total
    FROM ops.ingest_runs r
    JOIN latest_ingest_runs l ON l.dag_id = r.dag_id AND l.dag_run_id = r.dag_run_id
),
change_cycles AS (
    SELECT (cr.decided_at AT TIME ZONE 'UTC')::date
           - (cr.requested_at AT TIME ZONE 'UTC')::date AS days
    FROM curated.change_requests cr
    WHERE cr.status IN ('approved', 'rejected')
      AND cr.decided_at IS NOT NULL AND cr.requested_at IS NOT NULL
)
SELECT %(as_of)s::date, kpi, trim_scale(value), numerator, denominator
FROM (
    SELECT 'contract_to_launch_days_median' AS kpi,
           (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY days) FROM launch)::numeric AS value,
           NULL::numeric AS numerator, NULL::numeric AS denominator
    UNION ALL
    SELECT 'invoice_on_time_rate',
           CASE WHEN count(*) > 0
                THEN count(*) FILTER (WHERE invoiced_on - accepted_on <= 3)::numeric / count(*) END,
           count(*) FILTER (WHERE invoiced_on - accepted_on <= 3), count(*)
    FROM milestone_invoices
    UNION ALL
    SELECT 'timesheet_on_time_rate',
           CASE WHEN counted > 0 THEN on_time::numeric / counted END, on_time, counted
    FROM compliance
    UNION ALL
    SELECT 'billable_utilization',
           CASE WHEN capacity > 0 THEN billable / capacity END, billable, capacity
    FROM utilization
    UNION ALL
    SELECT 'ready_to_bill_amount', ready, NULL, NULL FROM readiness
    UNION ALL
    SELECT 'blocked_amount', blocked, NULL, NULL FROM readiness
    UNION ALL
    SELECT 'integration_error_rate',
           CASE WHEN total > 0 THEN failed::numeric / total END, failed, total
    FROM requests
    UNION ALL
    SELECT 'change_request_cycle_days_median',
           (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY days) FROM change_cycles)::numeric,
           NULL, NULL
) k;
