-- Employee weeks, working days and the week totals of time entries shared by
-- utilization_weekly and timesheet_compliance (temporary, dropped at commit).
-- %(as_of)s is the run's as-of date.

-- One row per employee and ISO week (Monday week_start) with at least one day
-- (Mon..Sun) between hireDate and terminationDate, over the as-of week and the 52 before.
CREATE TEMP TABLE employee_weeks ON COMMIT DROP AS
SELECT e.employee_id,
       e.email,
       w.week_start,
       e.hire_date,
       e.termination_date,
       trim_scale(coalesce(e.standard_hours_per_week, 0) / 5)   AS daily_capacity,
       trim_scale(e.target_utilization_percent / 100) AS target_utilization
FROM curated.employees e
JOIN (SELECT generate_series(date_trunc('week', %(as_of)s::date)::date - 52 * 7,
                             date_trunc('week', %(as_of)s::date)::date,
                             interval '7 days')::date AS week_start) w
  ON (e.hire_date IS NULL OR e.hire_date <= w.week_start + 6)
 AND (e.termination_date IS NULL OR e.termination_date >= w.week_start);

-- One row per employee and working day of those weeks (Mon..Fri, employed, not a
-- company holiday), whether or not it is after the as-of date (compliance needs the
-- whole week), with the day's capacity after leave:
--   leave = least(daily capacity, days-amount x daily capacity + hours-amount)
--   capacity = daily capacity - leave
CREATE TEMP TABLE employee_days ON COMMIT DROP AS
WITH holiday_days AS (
    SELECT DISTINCT generate_series(h.start_date, h.end_date, interval '1 day')::date AS day
    FROM curated.holidays h
),
leave AS (
    SELECT t.employee_id, t.day,
           sum(t.amount) FILTER (WHERE t.unit = 'days')  AS days_amount,
           sum(t.amount) FILTER (WHERE t.unit = 'hours') AS hours_amount
    FROM curated.time_off_days t
    WHERE t.request_status = 'approved'
    GROUP BY t.employee_id, t.day
)
SELECT w.employee_id,
       w.week_start,
       d.day::date AS day,
       w.daily_capacity,
       least(w.daily_capacity,
             coalesce(l.days_amount, 0) * w.daily_capacity + coalesce(l.hours_amount, 0)) AS leave_hours,
       w.daily_capacity
         - least(w.daily_capacity,
                 coalesce(l.days_amount, 0) * w.daily_capacity + coalesce(l.hours_amount, 0)) AS capacity
FROM employee_weeks w
CROSS JOIN LATERAL generate_series(w.week_start, w.week_start + 4, interval '1 day') AS d(day)
LEFT JOIN leave l ON l.employee_id = w.employee_id AND l.day = d.day::date
WHERE (w.hire_date IS NULL OR d.day::date >= w.hire_date)
  AND (w.termination_date IS NULL OR d.day::date <= w.termination_date)
  AND NOT EXISTS (SELECT 1 FROM holiday_days h WHERE h.day = d.day::date);

-- The time entries of each employee and ISO week, in one pass:
--   billable_hours / nonbillable_hours: approved entries spent on or before as_of
--   hours_logged, submitted_entries: submitted or approved entries
--   late_entries: of those, submitted (coalesce(submitted_at, approved_at)) after the
--                 deadline, the following Monday 12:00 UTC, or with neither time
--   draft_entries: draft entries
CREATE TEMP TABLE employee_week_entries ON COMMIT DROP AS
SELECT te.employee_id,
       date_trunc('week', te.spent_date)::date AS week_start,
       sum(te.hours) FILTER (WHERE te.status = 'approved' AND te.billable
                               AND te.spent_date <= %(as_of)s::date)     AS billable_hours,
       sum(te.hours) FILTER (WHERE te.status = 'approved' AND NOT te.billable
                               AND te.spent_date <= %(as_of)s::date)     AS nonbillable_hours,
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
GROUP BY te.employee_id, date_trunc('week', te.spent_date)::date;
