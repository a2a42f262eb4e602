-- marts.project_margin for %(as_of)s: per project and month (months starting on or
-- before as_of), over approved entries:
--   revenue = sum(hours x billable_rate) of billable entries (no rate adds 0)
--   cost    = sum(hours x HRIS hourly cost rate) of all entries (confidential rates,
--             aggregated here to project level only; hours without a rate add 0 and
--             are counted in hours_without_cost_rate)
--   margin  = revenue - cost; margin_pct = margin / revenue (null when revenue is 0)
--   contributors = people whose hours are in `cost` (they have a cost rate): row level
--             security shows psops_analyst only rows with enough of them (migration 0010)
INSERT INTO marts.project_margin
    (as_of, project_id, project_code, billing_type, currency, month_start, hours,
     billable_hours, revenue, cost, margin, margin_pct, hours_without_cost_rate, contributors)
SELECT %(as_of)s::date, p.project_id, p.code, p.billing_type, p.currency, x.month_start,
       x.hours, x.billable_hours, round(x.revenue, 2), round(x.cost, 2),
       round(x.revenue - x.cost, 2),
       CASE WHEN x.revenue <> 0 THEN round((x.revenue - x.cost) / x.revenue, 4) END,
       x.hours_without_cost_rate, x.contributors
FROM curated.projects p
JOIN (
    -- per project and month, from one row per person: contributors = people with a rate
    SELECT project_id, month_start,
           sum(hours) AS hours,
           coalesce(sum(billable_hours), 0) AS billable_hours,
           coalesce(sum(revenue), 0) AS revenue,
           coalesce(sum(hours * coalesce(cost_rate, 0)), 0) AS cost,
           coalesce(sum(hours) FILTER (WHERE cost_rate IS NULL), 0) AS hours_without_cost_rate,
           count(*) FILTER (WHERE cost_rate IS NOT NULL) AS contributors
    FROM (
        SELECT te.project_id,
               date_trunc('month', te.spent_date)::date AS month_start,
               te.employee_id,
               sum(te.hours) AS hours,
               sum(te.hours) FILTER (WHERE te.billable) AS billable_hours,
               sum(te.hours * coalesce(te.billable_rate, 0)) FILTER (WHERE te.billable) AS revenue
        FROM curated.time_entries te
        WHERE te.status = 'approved'
          AND date_trunc('month', te.spent_date)::date <= %(as_of)s::date
        GROUP BY te.project_id, date_trunc('month', te.spent_date)::date, te.employee_id
    ) per_person
    -- a quarantined employee's rate takes no part (employee.cost_rate_range)
    LEFT JOIN confidential.employee_cost_rates cr
      ON cr.employee_id = per_person.employee_id
     AND EXISTS (SELECT 1 FROM curated.employees e WHERE e.employee_id = cr.employee_id)
    GROUP BY project_id, month_start
) x ON x.project_id = p.project_id;
