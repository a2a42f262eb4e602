"""Exception lifecycle, quarantine, critical stop, idempotency, incrementality,
privileges, the remaining KPIs, and the catalogue <-> suites link."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import psycopg
import pytest

from psops.transform import rules
from psops.transform.quality import CriticalGateFailed
from psops.transform.runner import run_transform
from tests.transform.conftest import (
    AS_OF,
    billing_line,
    change_request,
    crm_deal,
    erp_job,
    expense,
    hris_employee,
    invoice,
    load_hris,
    milestone,
    psa_project,
    records,
    rows,
    time_entry,
    value,
)

D = Decimal
U = "u@x.com"


@pytest.fixture
def base(wh, raw):
    load_hris(raw, [hris_employee(1, U), hris_employee(2, "v@x.com", hours="0")])
    raw.load("psa_projects", [psa_project(1, "PRJ-00001")])
    raw.load("erp_jobs", [erp_job(1, "PRJ-00001")])
    return raw


def exceptions(conn, rule_id):
    return rows(conn, "SELECT record_key, status, times_seen FROM ops.exceptions "
                "WHERE rule_id = %s ORDER BY id", rule_id)


def test_quarantine_lifecycle(wh, base):
    base.load("psa_time_entries", [
        time_entry(1, "2026-03-02", 30, U),                    # hours_range (error)
        time_entry(2, "2026-03-02", 8, U, project_id=999),     # unknown_project (error)
        time_entry(3, "2026-03-02", 4, U),                     # fine
        time_entry(4, "2026-03-05", 4, U),                     # future_date at Mar 4
        time_entry(5, "2026-03-02", 2, "nobody@x.com"),        # unknown_employee
    ])
    run_transform(AS_OF)
    assert exceptions(wh, "time_entry.hours_range") == [("1", "open", 1)]
    assert exceptions(wh, "time_entry.unknown_project") == [("2", "open", 1)]
    assert exceptions(wh, "time_entry.future_date") == [("4", "open", 1)]
    assert exceptions(wh, "time_entry.unknown_employee") == [("5", "open", 1)]
    assert exceptions(wh, "employee.missing_standard_hours") == [("2", "open", 1)]  # warning
    # quarantined entries are not curated and not counted: billable = entry 3 only
    assert rows(wh, "SELECT time_entry_id FROM curated.time_entries ORDER BY 1") == [("3",)]
    assert rows(wh, "SELECT billable_hours FROM marts.utilization_weekly WHERE employee_id = '1' "
                "AND week_start = '2026-03-02'") == [(D(4),)]
    # the warning keeps employee 2 in curated
    assert rows(wh, "SELECT count(*) FROM curated.employees") == [(2,)]
    seen = ("SELECT first_seen_at, last_seen_at FROM ops.exceptions "
            "WHERE rule_id = 'time_entry.hours_range'")
    [first_seen] = records(wh, seen)

    # seen again: still one open row, bumped
    run_transform(AS_OF)
    assert exceptions(wh, "time_entry.hours_range") == [("1", "open", 2)]
    [again] = records(wh, seen)
    assert again["first_seen_at"] == first_seen["first_seen_at"]
    assert again["last_seen_at"] > first_seen["last_seen_at"]

    # fixed at the source (a newer version of entry 1): resolved, other rules untouched
    base.load("psa_time_entries", [time_entry(1, "2026-03-02", 8, U, updated_at="2026-03-03T09:00:00Z")])
    run_transform(AS_OF)
    assert exceptions(wh, "time_entry.hours_range") == [("1", "resolved", 2)]
    assert exceptions(wh, "time_entry.unknown_project") == [("2", "open", 3)]
    assert rows(wh, "SELECT time_entry_id FROM curated.time_entries ORDER BY 1") == [("1",), ("3",)]
    # 8 + 4 = 12 billable hours now
    assert rows(wh, "SELECT billable_hours FROM marts.utilization_weekly WHERE as_of = %s "
                "AND employee_id = '1' AND week_start = '2026-03-02'", AS_OF) == [(D(12),)]

    # the as-of date moves past entry 4's date: future_date resolves on its own
    run_transform(date(2026, 3, 5))
    assert exceptions(wh, "time_entry.future_date") == [("4", "resolved", 3)]

    # broken again: a new open row, the resolved one stays as history
    base.load("psa_time_entries", [time_entry(1, "2026-03-02", 0, U, updated_at="2026-03-04T09:00:00Z")])
    run_transform(date(2026, 3, 5))
    assert exceptions(wh, "time_entry.hours_range") == [("1", "resolved", 2), ("1", "open", 1)]


def test_one_open_row_is_enforced_by_the_database(wh):
    insert = ("INSERT INTO ops.exceptions (rule_id, severity, source_system, entity, record_key) "
              "VALUES ('x.y', 'error', 'psa', 'x', '1')")
    wh.execute(insert)
    with pytest.raises(psycopg.errors.UniqueViolation):
        wh.execute(insert)


def test_deal_rule_depends_on_the_as_of_date(wh, base):
    base.load("crm_deals", [crm_deal(1, closedate="2026-02-27T23:00:00Z"),   # Mar 4 - 5 days
                            crm_deal(2, closedate="2026-02-28T00:30:00Z")])  # only 4 days
    run_transform(AS_OF)
    assert exceptions(wh, "deal.closed_won_without_project") == [("1", "open", 1)]


def test_critical_stop_on_empty_employees(wh, raw):
    load_hris(raw, [])
    raw.load("psa_projects", [psa_project(1, "PRJ-00001")])
    with pytest.raises(CriticalGateFailed, match="curated.employees would be empty"):
        run_transform(AS_OF)
    assert rows(wh, "SELECT count(*) FROM marts.process_kpis") == [(0,)]
    assert rows(wh, "SELECT status FROM ops.transform_runs") == [("failed",)]


def test_critical_stop_when_a_table_falls_by_more_than_half(wh, raw):
    load_hris(raw, [hris_employee(i, f"e{i}@x.com") for i in range(1, 6)])  # 5 employees
    run_transform(AS_OF)
    kpis_before = rows(wh, "SELECT kpi, value FROM marts.process_kpis ORDER BY kpi")
    # 2 employees: 2 x 2 = 4 < 5 -> more than half gone
    load_hris(raw, [hris_employee(1, "e1@x.com"), hris_employee(2, "e2@x.com")])
    with pytest.raises(CriticalGateFailed, match="from 5 to 2 rows"):
        run_transform(AS_OF)
    # nothing published: curated and marts as the last good run left them
    assert rows(wh, "SELECT count(*) FROM curated.employees") == [(5,)]
    assert rows(wh, "SELECT kpi, value FROM marts.process_kpis ORDER BY kpi") == kpis_before
    # 3 employees: 3 x 2 = 6 >= 5 -> fine
    load_hris(raw, [hris_employee(i, f"e{i}@x.com") for i in range(1, 4)])
    run_transform(AS_OF)
    assert rows(wh, "SELECT count(*) FROM curated.employees") == [(3,)]


def test_a_critical_gate_failure_opens_no_exceptions(wh, raw, tmp_path):
    """An empty HRIS snapshot: every time entry would fail unknown_employee, but the
    critical gate stops the run first and no exception row (nor GX result) is kept."""
    load_hris(raw, [])
    raw.load("psa_projects", [psa_project(1, "PRJ-00001")])
    raw.load("psa_time_entries", [time_entry(i, "2026-03-02", 8, f"u{i}@x.com") for i in range(1, 41)])
    with pytest.raises(CriticalGateFailed, match="curated.employees would be empty"):
        run_transform(AS_OF, with_gx=True, docs_dir=tmp_path / "docs")
    assert rows(wh, "SELECT count(*) FROM ops.exceptions") == [(0,)]
    assert rows(wh, "SELECT count(*) FROM ops.quality_results") == [(0,)]
    assert rows(wh, "SELECT status FROM ops.transform_runs") == [("failed",)]


def test_out_of_range_amounts_are_quarantined_and_the_marts_publish(wh, base):
    """Beyond what marts' numeric(14,2) holds: error rules quarantine the records."""
    big = 10_000_000_000_000  # 1e13
    load_hris(base, [hris_employee(1, U), hris_employee(2, "v@x.com", hours="0"),
                     hris_employee(3, "rich@x.com", cost=str(big))])
    base.load("psa_projects", [psa_project(2, "PRJ-00002", billing_type="fixed_fee")])
    base.load("psa_milestones", [milestone(1, 2, "PRJ-00002", big, "2026-02-01", accepted_at="2026-02-02T10:00:00Z"),
                                 milestone(2, 2, "PRJ-00002", 1000, "2026-02-01", accepted_at="2026-02-02T10:00:00Z")])
    base.load("psa_time_entries", [time_entry(1, "2026-02-02", 8, U, rate=big),
                                   time_entry(2, "2026-02-03", 8, U, rate=100),
                                   time_entry(3, "2026-02-04", 8, "rich@x.com", rate=100)])
    base.load("psa_expenses", [expense(1, "2026-02-05", big, U), expense(2, "2026-02-06", 50, U)])
    base.load("erp_billing_milestones", [billing_line(1, 1, "PRJ-00002", 2, -big)])
    base.load("erp_invoices", [invoice(1, 1, "PRJ-00001", "2026-02-10", big, period_start="2026-01-01")])
    run_transform(AS_OF)
    for rule_id, key in [("milestone.amount_range", "1"), ("time_entry.billable_rate_range", "1"),
                         ("expense.amount_range", "1"), ("billing_schedule_line.amount_range", "1"),
                         ("invoice.amount_range", "1"), ("employee.cost_rate_range", "3")]:
        assert exceptions(wh, rule_id) == [(key, "open", 1)], rule_id
    assert rows(wh, "SELECT item_id, amount FROM marts.billing_readiness WHERE as_of = %s "
                "ORDER BY item_id", AS_OF) == [("2", D("1000.00")), ("2026-02", D("1650.00"))]
    # the out-of-range employee is quarantined: their hours carry no cost
    assert rows(wh, "SELECT revenue, cost, hours_without_cost_rate FROM marts.project_margin "
                "WHERE as_of = %s", AS_OF) == [(D("1600.00"), D("400.00"), D(8))]


MART_DUMP = """SELECT 'u', row_to_json(x)::text FROM marts.utilization_weekly x UNION ALL
               SELECT 't', row_to_json(x)::text FROM marts.timesheet_compliance x UNION ALL
               SELECT 'b', row_to_json(x)::text FROM marts.billing_readiness x UNION ALL
               SELECT 'k', row_to_json(x)::text FROM marts.process_kpis x
               WHERE x.kpi <> 'integration_error_rate' UNION ALL
               SELECT 'm', row_to_json(x)::text FROM marts.project_margin x ORDER BY 1, 2"""


def test_rerun_is_idempotent_and_other_dates_are_kept(wh, base):
    base.load("psa_time_entries", [time_entry(1, "2026-03-02", 8, U), time_entry(2, "2026-02-24", 6, U)])
    run_transform(AS_OF - timedelta(days=7))  # entry 1 (Mar 2) is future then: quarantined
    run_transform(AS_OF)
    first = rows(wh, MART_DUMP)
    curated_first = rows(wh, "SELECT xmin::text, time_entry_id FROM curated.time_entries ORDER BY 2")
    run_transform(AS_OF)
    assert rows(wh, MART_DUMP) == first
    # unchanged curated rows are not rewritten (same xmin)
    assert rows(wh, "SELECT xmin::text, time_entry_id FROM curated.time_entries ORDER BY 2") == curated_first
    assert rows(wh, "SELECT count(DISTINCT as_of) FROM marts.utilization_weekly") == [(2,)]


def test_changes_are_picked_up_incrementally_latest_version_wins(wh, base):
    base.load("psa_time_entries", [time_entry(1, "2026-03-02", 8, U, updated_at="2026-03-02T10:00:00Z")])
    run_transform(AS_OF)
    hwm = value(wh, "SELECT last_load_seq FROM ops.transform_watermarks WHERE entity = 'time_entry'")
    # a newer version (hours 5), then an OLDER copy loaded later (overlap window): newer wins
    base.load("psa_time_entries", [time_entry(1, "2026-03-02", 5, U, updated_at="2026-03-03T10:00:00Z"),
                                   time_entry(2, "2026-03-03", 1, U, updated_at="2026-03-03T10:00:00Z")])
    base.load("psa_time_entries", [time_entry(1, "2026-03-02", 8, U, updated_at="2026-03-02T10:00:00Z")])
    run_transform(AS_OF)
    assert rows(wh, "SELECT time_entry_id, hours FROM curated.time_entries ORDER BY 1") == [
        ("1", D(5)), ("2", D(1))]
    # 5 + 1 = 6 billable hours in the as-of week
    assert rows(wh, "SELECT billable_hours FROM marts.utilization_weekly WHERE employee_id = '1' "
                "AND week_start = '2026-03-02'") == [(D(6),)]
    assert value(wh, "SELECT last_load_seq FROM ops.transform_watermarks "
                 "WHERE entity = 'time_entry'") == hwm + 3
    # same update time twice: the copy loaded last wins
    base.load("psa_time_entries", [time_entry(2, "2026-03-03", 2, U, updated_at="2026-03-03T10:00:00Z")])
    run_transform(AS_OF)
    assert rows(wh, "SELECT hours FROM curated.time_entries WHERE time_entry_id = '2'") == [(D(2),)]


def test_rows_of_a_running_ingest_run_wait_until_it_finishes(wh, base):
    running = base.start_run("psa_time_entries", status="running")
    base.append("psa_time_entries", [time_entry(1, "2026-03-02", 8, U)], running)
    base.load("psa_time_entries", [time_entry(2, "2026-03-02", 1, U)])  # later load_seq, finished
    run_transform(AS_OF)
    assert rows(wh, "SELECT count(*) FROM staging.time_entries") == [(0,)]
    base.finish(running)
    run_transform(AS_OF)
    assert rows(wh, "SELECT time_entry_id FROM curated.time_entries ORDER BY 1") == [("1",), ("2",)]


def test_psa_users_resolve_to_employees_when_hris_catches_up(wh, base):
    base.load("psa_time_entries", [time_entry(1, "2026-03-02", 8, "New@X.com")])
    run_transform(AS_OF)
    assert exceptions(wh, "time_entry.unknown_employee") == [("1", "open", 1)]
    load_hris(base, [hris_employee(1, U), hris_employee(2, "v@x.com", hours="0"),
                     hris_employee(3, "new@x.com")])
    run_transform(AS_OF)
    assert exceptions(wh, "time_entry.unknown_employee") == [("1", "resolved", 1)]
    assert rows(wh, "SELECT employee_id FROM curated.time_entries") == [("3",)]


def test_analyst_reads_marts_curated_exceptions_but_no_cost_rates(wh, base):
    run_transform(AS_OF)
    wh.execute("SET ROLE psops_analyst")
    try:
        for table in ("marts.utilization_weekly", "marts.billing_readiness", "marts.process_kpis",
                      "marts.project_margin", "marts.billing_readiness_blockers",
                      "curated.employees", "curated.time_entries", "ops.exceptions"):
            wh.execute(f"SELECT * FROM {table} LIMIT 1")
        for table in ("confidential.employee_cost_rates", "staging.employees", "raw.hris_employees"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                wh.execute(f"SELECT * FROM {table} LIMIT 1")
    finally:
        wh.execute("RESET ROLE")
    # and no curated column carries a cost rate
    assert rows(wh, "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema IN ('curated', 'marts') AND column_name ILIKE '%%cost_rate%%' "
                "AND column_name <> 'hours_without_cost_rate'") == []
    assert rows(wh, "SELECT cost_rate FROM confidential.employee_cost_rates WHERE employee_id = '1'") == [
        (D(50),)]


def test_process_kpis_medians_and_integration_errors(wh, base):
    base.load("crm_deals", [
        crm_deal(1, signed="2026-01-02"), crm_deal(2, signed="2026-01-01"),
        crm_deal(3, signed="2026-01-10"), crm_deal(4, signed="2026-01-01"),
        crm_deal(5, stage="closedlost", signed="2026-01-01"),   # not closedwon
        crm_deal(6, signed=None),                               # no signed date
    ])
    base.load("psa_projects", [
        psa_project(11, "PRJ-00011", deal_id="1", created_at="2026-01-05T08:00:00Z"),  # 3 days
        psa_project(12, "PRJ-00012", deal_id="2", created_at="2026-01-11T23:59:00Z"),  # 10 days
        psa_project(13, "PRJ-00013", deal_id="3", created_at="2026-01-14T00:00:00Z"),  # 4 days
        psa_project(14, "PRJ-00014", deal_id="4", created_at="2026-01-02T12:00:00Z"),  # 1 day
        psa_project(15, "PRJ-00015", deal_id="5", created_at="2026-01-30T12:00:00Z"),
        psa_project(16, "PRJ-00016", deal_id="6", created_at="2026-01-30T12:00:00Z"),
    ])
    base.load("psa_change_requests", [
        change_request(1, 1, "PRJ-00001", status="approved", requested_at="2026-01-01T23:00:00Z",
                       decided_at="2026-01-02T01:00:00Z"),          # Jan 1 -> Jan 2: 1 day
        change_request(2, 1, "PRJ-00001", status="rejected", requested_at="2026-01-01T10:00:00Z",
                       decided_at="2026-01-05T10:00:00Z"),          # 4 days
        change_request(3, 1, "PRJ-00001", status="pending"),        # not decided
    ])
    # ingest runs: psops_ingest_crm "old" (ignored: a newer run exists) and "new" (2 streams)
    for dag_run, stream, started, requests, failed in (
        ("old", "deals", "-1 day", 100, 50), ("new", "deals", "+1 day", 10, 1),
        ("new", "companies", "+1 day", 30, 3),
    ):
        wh.execute(
            "INSERT INTO ops.ingest_runs (dag_id, dag_run_id, system, stream, mode, status, requests, "
            "failed_requests, started_at, finished_at) VALUES ('psops_ingest_crm', %s, 'crm', %s, "
            "'incremental', 'succeeded', %s, %s, now() + %s::interval, now() + %s::interval)",
            (dag_run, stream, requests, failed, started, started))
    wh.execute("UPDATE ops.ingest_runs SET started_at = now() - interval '2 days' "
               "WHERE dag_id = 'psops_ingest_crm' AND dag_run_id NOT IN ('old', 'new')")
    run_transform(AS_OF)
    kpis = {k: (v, n, d) for k, v, n, d in rows(
        wh, "SELECT kpi, value, numerator, denominator FROM marts.process_kpis WHERE as_of = %s", AS_OF)}
    # closedwon deals with a signed date and a project: 3, 10, 4, 1 -> sorted 1, 3, 4, 10
    # -> even count: (3 + 4) / 2 = 3.5
    assert kpis["contract_to_launch_days_median"] == (D("3.5"), None, None)
    # decided change requests: 1 and 4 days -> (1 + 4) / 2 = 2.5
    assert kpis["change_request_cycle_days_median"] == (D("2.5"), None, None)
    # latest run per ingest DAG: crm "new" = 10 + 30 requests, 1 + 3 failed;
    # psops_ingest_hris: its latest run (the whos_out load, 1 request, 0 failed);
    # psops_ingest_psa: latest = the projects load above (1, 0);
    # psops_ingest_erp: its only run (jobs, 1, 0)
    # -> 4 / (40 + 1 + 1 + 1) = 4 / 43
    value, failed, total = kpis["integration_error_rate"]
    assert (failed, total) == (D(4), D(43))
    assert round(value, 12) == round(D(4) / D(43), 12)


def test_suites_on_disk_are_generated_from_the_catalogue():
    rendered = rules.render_suites()
    on_disk = {p.name: p.read_text() for p in rules.SUITES_DIR.glob("*.json")}
    assert on_disk == rendered, "run: PYTHONPATH=plugins python -m psops.transform.rules"


def test_catalogue_has_every_contract_rule():
    catalogue = rules.load_catalogue()
    contract = {
        "time_entry.hours_range": "error", "time_entry.unknown_project": "error",
        "time_entry.unknown_employee": "error", "time_entry.future_date": "error",
        "time_entry.after_termination": "warning", "expense.amount_positive": "error",
        "milestone.amount_positive": "error", "project.missing_erp_code": "warning",
        "deal.closed_won_without_project": "warning", "employee.missing_standard_hours": "warning",
    }
    assert {r: catalogue.rule(r).severity for r in contract} == contract
    for entity in catalogue.entities.values():
        ids = {r.rule_id for r in catalogue.rules_of(entity.name)}
        assert {f"{entity.name}.key_not_null", f"{entity.name}.key_unique"} <= ids
