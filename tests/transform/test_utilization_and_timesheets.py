"""marts.utilization_weekly and marts.timesheet_compliance, worked out by hand.

as_of = Wed 2026-03-04; as-of week starts Mon 2026-03-02; the 53 weeks run from
2025-03-03 to 2026-03-02. Complete weeks: Feb 2, 9, 16, 23.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from psops.transform.runner import run_transform
from tests.transform.conftest import (
    AS_OF,
    erp_job,
    holiday,
    hris_employee,
    load_hris,
    psa_project,
    rows,
    time_entry,
    time_off_request,
    value,
)

D = Decimal
A, B, C, E4 = "a@x.com", "b@x.com", "c@x.com", "d@x.com"


@pytest.fixture
def people(wh, raw):
    load_hris(
        raw,
        [
            hris_employee(1, A, hours="40", target="75"),             # daily 40/5 = 8
            hris_employee(2, B, hire="2026-02-25", hours="", target=""),  # empty hours: daily 0
            hris_employee(3, C, hours="20", term="2026-02-17"),       # daily 4, leaves Tue Feb 17
            hris_employee(4, E4, hire="2026-02-26", hours="40"),      # joins Thu Feb 26
        ],
        time_off=[
            time_off_request(1, 1, {"2026-02-25": "0.5"}, unit="days"),   # 0.5 x 8 = 4 h
            time_off_request(2, 1, {"2026-02-26": "10"}, unit="hours"),   # 10 h capped at 8
            time_off_request(3, 1, {"2026-02-27": "1"}, unit="days", status="denied"),  # ignored
        ],
        holidays=[holiday(1, "2026-02-24", name="Company day")],
    )
    raw.load("psa_projects", [psa_project(1, "PRJ-00001")])
    raw.load("erp_jobs", [erp_job(1, "PRJ-00001")])
    raw.load("psa_time_entries", [
        # week Feb 23 (employee 1)
        time_entry(1, "2026-02-23", 6, "A@X.com"),                        # approved billable (e-mail case differs)
        time_entry(2, "2026-02-27", 2, A, billable=False),                # approved non-billable
        time_entry(3, "2026-02-25", 5, A, status="submitted"),            # logged, not approved
        time_entry(4, "2026-02-28", 3, A),                                # Saturday, still in the week
        # week Mar 2 (as-of week)
        time_entry(5, "2026-03-02", 8, A),
        # week Feb 16: approved, no submitted_at; approved_at before Mon Feb 23 12:00 -> on time
        time_entry(6, "2026-02-17", 8, A, approved_at="2026-02-23T11:00:00Z"),
        # week Feb 9: submitted one second after Mon Feb 16 12:00 -> late
        time_entry(7, "2026-02-10", 8, A, status="submitted", submitted_at="2026-02-16T12:00:01Z"),
        # week Feb 2: submitted on time, but a draft entry remains -> late
        time_entry(8, "2026-02-03", 8, A, status="submitted", submitted_at="2026-02-06T10:00:00Z"),
        time_entry(9, "2026-02-04", 4, A, status="draft"),
        # week Jan 19: only a rejected entry -> missing
        time_entry(10, "2026-01-20", 8, A, status="rejected"),
        # week Jan 12: submitted exactly at the deadline Mon Jan 19 12:00 -> on time
        time_entry(11, "2026-01-13", 8, A, status="submitted", submitted_at="2026-01-19T12:00:00Z"),
    ])
    run_transform(AS_OF)
    return wh


def capacity(conn, employee_id, week):
    return value(conn, "SELECT capacity_hours FROM marts.utilization_weekly "
                 "WHERE as_of = %s AND employee_id = %s AND week_start = %s",
                 AS_OF, employee_id, date.fromisoformat(week))


def util(conn, employee_id, week):
    return rows(conn, "SELECT capacity_hours, billable_hours, nonbillable_hours, utilization, "
                "target_utilization, email FROM marts.utilization_weekly "
                "WHERE as_of = %s AND employee_id = %s AND week_start = %s",
                AS_OF, employee_id, date.fromisoformat(week))


def test_week_with_holiday_leave_in_days_and_hours(people):
    # Mon 23: 8; Tue 24 holiday: 0; Wed 25: 8 - 0.5 day x 8 = 4; Thu 26: 8 - min(8, 10 h) = 0;
    # Fri 27: 8 (the denied request does not count) -> capacity 8 + 0 + 4 + 0 + 8 = 20
    # billable: entry 1 (6) + entry 4 on Saturday (3) = 9; entry 3 is only submitted
    # non-billable: entry 2 = 2; utilization 9 / 20 = 0.45; target 75 / 100 = 0.75
    assert util(people, "1", "2026-02-23") == [(D(20), D(9), D(2), D("0.4500"), D("0.75"), A)]


def test_as_of_week_counts_only_days_up_to_as_of(people):
    # Mon-Wed Mar 2..4: 3 x 8 = 24; billable 8 -> 8 / 24 = 0.33333 -> 0.3333
    assert util(people, "1", "2026-03-02") == [(D(24), D(8), D(0), D("0.3333"), D("0.75"), A)]


def test_empty_standard_hours_and_mid_week_hire(people):
    # employee 2: hours empty -> daily 0 -> capacity 0 -> utilization null, target null
    assert util(people, "2", "2026-02-23") == [(D(0), D(0), D(0), None, None, B)]
    # employed from Wed Feb 25: first row is that week, then the as-of week -> 2 rows
    assert rows(people, "SELECT count(*) FROM marts.utilization_weekly WHERE employee_id = '2'") == [(2,)]
    # employee 4 joins Thu Feb 26: Thu + Fri = 2 x 8 = 16
    assert capacity(people, "4", "2026-02-23") == D(16)


def test_termination_mid_week(people):
    # employee 3 leaves Tue Feb 17: week Feb 16 has Mon + Tue = 2 x 4 = 8; no later weeks;
    # weeks 2025-03-03 .. 2026-02-16 = 51 rows (53 weeks minus Feb 23 and Mar 2)
    assert capacity(people, "3", "2026-02-16") == D(8)
    assert util(people, "3", "2026-02-23") == []
    assert rows(people, "SELECT count(*) FROM marts.utilization_weekly WHERE employee_id = '3'") == [(51,)]
    # employee 1 (hired 2024) has all 53 weeks
    assert rows(people, "SELECT count(*), min(week_start), max(week_start) FROM marts.utilization_weekly "
                "WHERE employee_id = '1'") == [(53, date(2025, 3, 3), date(2026, 3, 2))]


def compliance(conn, employee_id, week):
    return rows(conn, "SELECT expected, hours_logged, status FROM marts.timesheet_compliance "
                "WHERE as_of = %s AND employee_id = %s AND week_start = %s",
                AS_OF, employee_id, date.fromisoformat(week))


def test_timesheet_statuses(people):
    # as-of week: as_of Wed Mar 4 is before Tue Mar 10 -> open
    assert compliance(people, "1", "2026-03-02") == [(True, D(8), "open")]
    # Feb 23: deadline Mon Mar 2 12:00; entries submitted at 18:00 of their day -> on_time;
    # hours logged = 6 + 2 + 5 (submitted) + 3 = 16
    assert compliance(people, "1", "2026-02-23") == [(True, D(16), "on_time")]
    # Feb 16: approved_at fallback (11:00 < 12:00) -> on_time
    assert compliance(people, "1", "2026-02-16") == [(True, D(8), "on_time")]
    # Feb 9: submitted 12:00:01 > deadline -> late
    assert compliance(people, "1", "2026-02-09") == [(True, D(8), "late")]
    # Feb 2: on time but a draft entry remains -> late; draft hours are not logged (8, not 12)
    assert compliance(people, "1", "2026-02-02") == [(True, D(8), "late")]
    # Jan 19: a rejected entry only -> missing, 0 hours
    assert compliance(people, "1", "2026-01-19") == [(True, D(0), "missing")]
    # Jan 12: submitted exactly at the deadline -> on_time
    assert compliance(people, "1", "2026-01-12") == [(True, D(8), "on_time")]
    # employee 2: capacity 0 -> not_expected
    assert compliance(people, "2", "2026-02-23") == [(False, D(0), "not_expected")]
    # employee 3: Feb 16 expected (8 h) but nothing logged -> missing
    assert compliance(people, "3", "2026-02-16") == [(True, D(0), "missing")]


def test_kpis_over_the_last_four_complete_weeks(people):
    kpis = dict((k, (v, n, d)) for k, v, n, d in rows(
        people, "SELECT kpi, value, numerator, denominator FROM marts.process_kpis WHERE as_of = %s", AS_OF))
    # complete weeks Feb 2, 9, 16, 23 (Sundays before Wed Mar 4):
    #   employee 1: on_time (Feb 23), on_time (Feb 16), late (Feb 9), late (Feb 2)
    #   employee 2: Feb 23 not_expected (not counted)
    #   employee 3: missing Feb 2, 9, 16 (20 h weeks, nothing logged)
    #   employee 4: Feb 23 missing (16 h expected)
    #   -> on_time 2 / (2 + 2 late + 4 missing) = 2 / 8 = 0.25
    assert kpis["timesheet_on_time_rate"] == (D("0.25"), D(2), D(8))
    # billable utilization, same weeks:
    #   capacity: emp1 20 + 40 + 40 + 40 = 140; emp2 0; emp3 Feb 16 8 + Feb 9 20 + Feb 2 20 = 48;
    #   emp4 16 -> 204
    #   billable: emp1 Feb 23 9 + Feb 16 8 = 17 (Feb 9 and Feb 2 entries are not approved)
    #   -> 17 / 204 = 0.083333...
    value, numerator, denominator = kpis["billable_utilization"]
    assert (numerator, denominator) == (D(17), D(204))
    assert round(value, 10) == round(D(17) / D(204), 10)
