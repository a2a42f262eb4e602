-- marts.timesheet_compliance for %(as_of)s (warehouse contract).
--   expected     = whole-week capacity (ignoring the as-of cut) > 0
--   deadline     = following Monday 12:00 UTC; submission time = coalesce(submitted_at, approved_at)
--   hours_logged = hours of the week's submitted or approved entries
--   status       = not_expected | open (as_of before the following Tuesday) | missing
--                  | on_time (every submitted/approved entry by the deadline, no draft) | late
INSERT INTO marts.timesheet_compliance
    (as_of, employee_id, week_start, expected, hours_logged, status)
SELECT %(as_of)s::date,
       w.employee_id,
       w.week_start,
       coalesce(c.week_capacity, 0) > 0 AS expected,
       coalesce(s.hours_logged, 0),
       CASE WHEN NOT coalesce(c.week_capacity, 0) > 0   THEN 'not_expected'
            WHEN %(as_of)s::date < w.week_start + 8     THEN 'open'
            WHEN coalesce(s.submitted_entries, 0) = 0   THEN 'missing'
            WHEN s.late_entries = 0 AND s.draft_entries = 0 THEN 'on_time'
            ELSE 'late' END
FROM employee_weeks w
LEFT JOIN (
    SELECT employee_id, week_start, sum(capacity) AS week_capacity
    FROM employee_days
    GROUP BY employee_id, week_start
) c ON c.employee_id = w.employee_id AND c.week_start = w.week_start
LEFT JOIN (
    SELECT te.employee_id,
           date_trunc('week', te.spent_date)::date AS week_start,
           sum(te.hours) FILTER (WHERE te.status IN ('submitted', 'approved')) AS hours_logged,
           count(*) FILTER (WHERE te.status IN ('submitted', 'approved'))      AS submitted_entries,
           count(*) FILTER (
               WHERE te.status IN ('submitted', 'approved')
                 AND (coalesce(te.submitted_at, te.approved_at) IS NULL
                      OR coalesce(te.submitted_at, te.approved_at)
                         > ((date_trunc('week', te.spent_date)::date + 7) + time '12:00')
                           AT TIME ZONE 'UTC'))                                AS late_entries,
           count(*) FILTER (WHERE te.status = 'draft')                          AS draft_entries
    FROM curated.time_entries te
    GROUP BY te.employee_id, date_trunc('week', te.spent_date)::date
) s ON s.employee_id = w.employee_id AND s.week_start = w.week_start;
