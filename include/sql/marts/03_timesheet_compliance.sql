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
LEFT JOIN employee_week_entries s
  ON s.employee_id = w.employee_id AND s.week_start = w.week_start;
