-- marts.utilization_weekly for %(as_of)s (warehouse contract).
--   capacity_hours    = sum over working days on or before as_of of (daily capacity - leave)
--   billable_hours    = approved billable entries spent in the week, on or before as_of
--   nonbillable_hours = the same with billable false
--   utilization       = round(billable / capacity, 4), null when capacity is 0
INSERT INTO marts.utilization_weekly
    (as_of, employee_id, email, week_start, capacity_hours, billable_hours,
     nonbillable_hours, utilization, target_utilization)
SELECT %(as_of)s::date,
       w.employee_id,
       w.email,
       w.week_start,
       coalesce(c.capacity_hours, 0),
       coalesce(t.billable_hours, 0),
       coalesce(t.nonbillable_hours, 0),
       CASE WHEN coalesce(c.capacity_hours, 0) = 0 THEN NULL
            ELSE round(coalesce(t.billable_hours, 0) / c.capacity_hours, 4) END,
       w.target_utilization
FROM employee_weeks w
LEFT JOIN (
    SELECT employee_id, week_start, sum(capacity) AS capacity_hours
    FROM employee_days
    WHERE day <= %(as_of)s::date
    GROUP BY employee_id, week_start
) c ON c.employee_id = w.employee_id AND c.week_start = w.week_start
LEFT JOIN employee_week_entries t
  ON t.employee_id = w.employee_id AND t.week_start = w.week_start;
