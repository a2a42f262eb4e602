-- Employee weeks and working days shared by utilization_weekly and
-- timesheet_compliance (temporary, dropped at commit). %(as_of)s is the run's as-of date.

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
