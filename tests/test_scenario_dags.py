"""The hand-made scenario (sandbox/scenario.py) through the real DAGs. (Over 300 lines:
one `dags test` pass for the module serves every hand-worked figure.)

The sandbox serves a tiny explicit dataset; `bin/airflow dags test` runs the four
ingest DAGs and psops_transform for its as-of date (Tuesday 2026-03-31) once for the
module; the tests compare the marts with values worked out by hand from the
warehouse contract's mart definitions. The records are listed in
sandbox/scenario.py; the arithmetic is in the comments below.

Weeks (Monday starts): W1 03-02, W2 03-09, W3 03-16 (company holiday Wed 03-18),
W4 03-23, W5 03-30 (the as-of week). The last 4 complete weeks are W1..W4 (W4's
Sunday 03-29 is before the as-of date). Deadlines: the following Monday 12:00 UTC.
People: 101 Alice 40 h/week (8 h/day, target 80), 102 Paula 20 h (4 h/day, target
50), 103 Nico 40 h hired Wednesday 03-11 (target 75), 104 Omar empty standard hours
(no target) hired 03-16.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import psycopg
import pytest

from sandbox.scenario import EMPLOYEES, SCENARIO_TODAY, TIME_ENTRIES, build_scenario_dataset
from sandbox.server import start_sandbox
from tests.conftest import run_bin_airflow

AS_OF = SCENARIO_TODAY.isoformat()
DAGS = ("psops_ingest_crm", "psops_ingest_psa", "psops_ingest_erp", "psops_ingest_hris",
        "psops_transform")
W1, W2, W3, W4, W5 = (date(2026, 3, d) for d in (2, 9, 16, 23, 30))


def _plain(value):
    """Decimals as floats (numeric columns), so rows compare with literals."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@pytest.fixture(scope="module")
def scenario(database_factory, airflow_home):
    """Scenario sandbox → ingest ×4 → transform, once for the module; marts read back."""
    target = database_factory.create()
    with start_sandbox(dataset=build_scenario_dataset, today=AS_OF, port=0) as sandbox:
        env = {**sandbox.conn_env(), "AIRFLOW_CONN_WAREHOUSE": target.airflow_uri()}
        results = {dag_id: run_bin_airflow(["dags", "test", dag_id, AS_OF], airflow_home, env)
                   for dag_id in DAGS}
        requests = sum(s["requests"] for s in sandbox.stats().values())
    marts: dict[str, object] = {"results": results, "requests": requests}
    with psycopg.connect(target.conninfo()) as conn:
        def rows(sql: str, params: tuple = (AS_OF,)) -> list[tuple]:
            return [tuple(_plain(v) for v in r) for r in conn.execute(sql, params)]

        marts["utilization"] = {
            (r[0], r[1]): r[2:] for r in rows(
                "SELECT employee_id, week_start, capacity_hours, billable_hours, "
                "nonbillable_hours, utilization, target_utilization "
                "FROM marts.utilization_weekly WHERE as_of = %s")}
        marts["emails"] = dict(rows("SELECT DISTINCT employee_id, email "
                                    "FROM marts.utilization_weekly WHERE as_of = %s"))
        marts["compliance"] = {
            (r[0], r[1]): r[2:] for r in rows(
                "SELECT employee_id, week_start, expected, hours_logged, status "
                "FROM marts.timesheet_compliance WHERE as_of = %s")}
        marts["billing"] = {
            (r[0], r[1]): r[2:] for r in rows(
                "SELECT project_code, item_id, billing_type, item_type, amount, status, "
                "blocking_reasons FROM marts.billing_readiness WHERE as_of = %s")}
        marts["kpis"] = {r[0]: r[1:] for r in rows(
            "SELECT kpi, value, numerator, denominator FROM marts.process_kpis "
            "WHERE as_of = %s")}
        marts["exceptions"] = {r[:3] for r in rows(
            "SELECT rule_id, record_key, severity FROM ops.exceptions "
            "WHERE status = 'open'", ())}
    return marts


def test_sandbox_serves_an_explicit_dataset_and_resets_to_it():
    dataset = build_scenario_dataset(SCENARIO_TODAY)
    with start_sandbox(dataset=dataset, port=0) as sandbox:
        assert sandbox.state.params.today == SCENARIO_TODAY
        assert len(sandbox.dataset.employees) == len(EMPLOYEES)
        assert len(sandbox.dataset.time_entries) == len(TIME_ENTRIES)
        sandbox.touch("psa", "milestones", ids=[8004], changes={"status": "accepted"})
        assert sandbox.dataset.psa["milestones"].get(8004)["status"] == "accepted"
        sandbox.reset_data()  # a fresh copy of the given dataset, not the generated firm
        assert sandbox.dataset.psa["milestones"].get(8004)["status"] == "completed"
        assert len(sandbox.dataset.psa["projects"]) == 5
    assert dataset.psa["milestones"].get(8004)["status"] == "completed"


@pytest.mark.slow
def test_every_dag_run_succeeded(scenario):
    for dag_id, result in scenario["results"].items():
        output = result.stdout + result.stderr
        assert result.returncode == 0, (dag_id, output[-4000:])
        assert "state=success" in output or "DagRun Finished" in output, (dag_id, output[-2000:])


@pytest.mark.slow
def test_quality_rules_flag_exactly_the_planted_records(scenario):
    assert scenario["exceptions"] == {
        ("time_entry.hours_range", "1104", "error"),       # 30 h on one day
        ("time_entry.future_date", "1114", "error"),       # spent 2026-04-01 > as-of
        ("milestone.amount_positive", "8011", "error"),    # amount 0
        ("expense.amount_positive", "500005", "error"),    # total_cost 0
        ("project.missing_erp_code", "7003", "warning"),   # PRJ-00003 has no ERP job
        ("deal.closed_won_without_project", "9006", "warning"),  # closed 03-21: 10 days before
        ("employee.missing_standard_hours", "104", "warning"),
    }, sorted(scenario["exceptions"])


# --- marts.utilization_weekly -----------------------------------------------------------
# Row = (capacity, billable, nonbillable, utilization, target). Capacity = sum over
# working days (Mon-Fri, on or before the as-of date, employed, not a holiday) of
# (daily capacity - leave); billable/nonbillable = approved, non-quarantined entries.
UTILIZATION = {
    # Alice: week of New Year (holiday Thu 01-01): 4 working days x 8 = 32, no entries.
    ("101", date(2025, 12, 29)): (32, 0, 0, 0, 0.8),
    # 01-14 8 h + 01-15 6 h billable approved (01-16 2 h is rejected); 01-16 3 h non-billable.
    # 14 / 40 = 0.35
    ("101", date(2026, 1, 12)): (40, 14, 3, 0.35, 0.8),
    # 02-10 8 h + 02-12 5 h approved billable = 13; 13 / 40 = 0.325
    ("101", date(2026, 2, 9)): (40, 13, 0, 0.325, 0.8),
    # W1: 8 (PRJ-00002) + 16 (PRJ-00001) billable, 6 non-billable; 03-05's 30 h entry is
    # quarantined (hours_range). 24 / 40 = 0.6
    ("101", W1): (40, 24, 6, 0.6, 0.8),
    # W2: 20 billable (submitted late, still approved), 10 non-billable. 20 / 40 = 0.5
    ("101", W2): (40, 20, 10, 0.5, 0.8),
    # W3: holiday Wed -> 4 x 8 = 32; 16 + 12 billable, 4 non-billable. 28 / 32 = 0.875
    ("101", W3): (32, 28, 4, 0.875, 0.8),
    # W4: leave 1 day Mon (1 x 8 = 8 h) and 4 hours Thu: 40 - 8 - 4 = 28;
    # 7 + 7 billable; the 2 h non-billable entry is a draft. 14 / 28 = 0.5
    ("101", W4): (28, 14, 0, 0.5, 0.8),
    # W5: Mon + Tue only (as-of Tue) = 16; the only entry is a draft (and the 04-01 one
    # is quarantined as future). 0 / 16 = 0
    ("101", W5): (16, 0, 0, 0, 0.8),
    # Paula (4 h/day): 02-11 4 h approved; 02-13 3 h only submitted. 4 / 20 = 0.2
    ("102", date(2026, 2, 9)): (20, 4, 0, 0.2, 0.5),
    # W1: vacation 5 days x 1 day x 4 h = whole week off -> capacity 0, utilization null
    ("102", W1): (0, 0, 0, None, 0.5),
    # W2: 0.5 day on Tue = 0.5 x 4 = 2 h: 20 - 2 = 18; her only entry is a draft. 0 / 18
    ("102", W2): (18, 0, 0, 0, 0.5),
    # W3: holiday -> 4 x 4 = 16; 6 h billable + 2 h non-billable approved. 6 / 16 = 0.375
    ("102", W3): (16, 6, 2, 0.375, 0.5),
    # W4: 6 hours of sick leave on Tue, capped at the daily 4 h: 20 - 4 = 16; her 9 h are
    # only submitted. 0 / 16 = 0
    ("102", W4): (16, 0, 0, 0, 0.5),
    # W5: Mon + Tue = 2 x 4 = 8
    ("102", W5): (8, 0, 0, 0, 0.5),
    # Nico, hired Wednesday 03-11: W2 = Wed..Fri = 3 x 8 = 24; 8 + 10 billable, 4
    # non-billable. 18 / 24 = 0.75
    ("103", W2): (24, 18, 4, 0.75, 0.75),
    # W3: holiday -> 32, no entries
    ("103", W3): (32, 0, 0, 0, 0.75),
    # W4: 8 + 8 billable approved (the 4 h entry is rejected). 16 / 40 = 0.4
    ("103", W4): (40, 16, 0, 0.4, 0.75),
    ("103", W5): (16, 0, 0, 0, 0.75),
    # Omar: empty standard hours -> daily capacity 0; target empty -> null.
    # W3: 3 h non-billable approved, capacity 0 -> utilization null
    ("104", W3): (0, 0, 3, None, None),
    ("104", W4): (0, 0, 0, None, None),
    ("104", W5): (0, 0, 0, None, None),
}


@pytest.mark.slow
def test_utilization_weekly_rows(scenario):
    util = scenario["utilization"]
    for key, expected in UTILIZATION.items():
        assert util.get(key) == expected, key


@pytest.mark.slow
def test_utilization_weekly_has_a_row_per_employed_week(scenario):
    weeks: dict[str, set] = {}
    for employee, week in scenario["utilization"]:
        weeks.setdefault(employee, set()).add(week)
    # 53 weeks: 2025-03-31 .. 2026-03-30. Alice (hired 2024) has all of them; Paula
    # (hired Mon 02-02) 02-02..03-30 = 9; Nico (hired Wed 03-11) 03-09..03-30 = 4;
    # Omar (hired Mon 03-16) 3.
    assert {e: len(w) for e, w in weeks.items()} == {"101": 53, "102": 9, "103": 4, "104": 3}
    assert min(weeks["101"]) == date(2025, 3, 31) and max(weeks["101"]) == W5
    assert min(weeks["102"]) == date(2026, 2, 2) and min(weeks["103"]) == W2
    assert scenario["emails"]["103"] == "nico.novak@psops-demo.com"


# --- marts.timesheet_compliance ---------------------------------------------------------
# Row = (expected, hours_logged, status); hours_logged = submitted + approved hours.
COMPLIANCE = {
    # Alice: 2025-11-12's entry was rejected: no submitted/approved entry -> missing
    ("101", date(2025, 11, 10)): (True, 0, "missing"),
    # 12-10 8 h submitted Mon 12-15 09:00 <= deadline 12:00
    ("101", date(2025, 12, 8)): (True, 8, "on_time"),
    # 8 + 6 billable + 3 non-billable (the rejected 2 h not counted), submitted Mon 09:00
    ("101", date(2026, 1, 12)): (True, 17, "on_time"),
    # W1: 8 + 16 + 6 (the 30 h entry is quarantined), submitted exactly at 03-09 12:00:00
    ("101", W1): (True, 30, "on_time"),
    # W2: 20 h submitted 03-16 12:00:01, one second after the deadline
    ("101", W2): (True, 30, "late"),
    ("101", W3): (True, 32, "on_time"),
    # W4: 7 + 7 on time, but a draft entry (2 h) -> late
    ("101", W4): (True, 14, "late"),
    # W5: as-of Tue 03-31 is before the following Tuesday 04-07 -> open
    ("101", W5): (True, 0, "open"),
    # Paula: 4 approved + 3 submitted, both submitted Mon 02-16 09:00
    ("102", date(2026, 2, 9)): (True, 7, "on_time"),
    # W1: whole week on leave -> capacity 0 -> not expected
    ("102", W1): (False, 0, "not_expected"),
    # W2: only a draft entry -> missing
    ("102", W2): (True, 0, "missing"),
    # W3: submitted_at null; approved_at Mon 03-23 10:00 is the submission time -> on time
    ("102", W3): (True, 8, "on_time"),
    # W4: 9 h submitted Tue 03-31 08:00 > Mon 03-30 12:00 -> late
    ("102", W4): (True, 9, "late"),
    ("102", W5): (True, 0, "open"),
    ("103", W2): (True, 22, "on_time"),
    ("103", W3): (True, 0, "missing"),
    # W4: 8 + 8 submitted 03-30 11:59:59; the rejected entry (submitted late) is ignored
    ("103", W4): (True, 16, "on_time"),
    ("103", W5): (True, 0, "open"),
    # Omar: capacity 0 every week -> not expected (even the as-of week)
    ("104", W3): (False, 3, "not_expected"),
    ("104", W4): (False, 0, "not_expected"),
    ("104", W5): (False, 0, "not_expected"),
}


@pytest.mark.slow
def test_timesheet_compliance_rows(scenario):
    compliance = scenario["compliance"]
    for key, expected in COMPLIANCE.items():
        assert compliance.get(key) == expected, key
    assert set(compliance) == set(scenario["utilization"])
    assert {s for _, _, s in compliance.values()} == {
        "not_expected", "open", "missing", "on_time", "late"}


# --- marts.billing_readiness ------------------------------------------------------------
FF, TM = "fixed_fee", "time_and_materials"
BILLING = {  # (project, item) -> (billing_type, item_type, amount, status, reasons)
    # PRJ-00001, fixed fee, job active, no pending CR, no PO.
    ("PRJ-00001", "8000"): (FF, "milestone", 8000, "invoiced", []),
    ("PRJ-00001", "8001"): (FF, "milestone", 10000, "invoiced", []),
    ("PRJ-00001", "8002"): (FF, "milestone", 12000, "invoiced", []),
    # accepted 03-23, evidence, billing line 15,000; its only invoice is voided
    ("PRJ-00001", "8003"): (FF, "milestone", 15000, "ready", []),
    # completed, not accepted, no evidence document
    ("PRJ-00001", "8004"): (FF, "milestone", 7000, "blocked",
                            ["MILESTONE_NOT_ACCEPTED", "MISSING_EVIDENCE"]),
    # no ERP billingMilestone with externalId 8005
    ("PRJ-00001", "8005"): (FF, "milestone", 6000, "blocked", ["NO_BILLING_SCHEDULE"]),
    # billing line 5,500 vs milestone 5,000: |diff| 500 > 0.005
    ("PRJ-00001", "8006"): (FF, "milestone", 5000, "blocked", ["BILLING_AMOUNT_MISMATCH"]),
    # due 04-30 > as-of, planned
    ("PRJ-00001", "8007"): (FF, "milestone", 9000, "not_due", []),
    # due 04-15 > as-of but accepted 03-30 <= as-of: due now, and nothing blocks it
    ("PRJ-00001", "8008"): (FF, "milestone", 4000, "ready", []),
    # (8011, amount 0, is quarantined: no row)
    # PRJ-00004: job inactive, PO 7002 pendingApproval, change request 6004 pending
    ("PRJ-00004", "8009"): (FF, "milestone", 20000, "blocked",
                            ["NO_ACTIVE_PROJECT_CODE", "PENDING_CHANGE_REQUEST",
                             "UNAPPROVED_PURCHASE_ORDER"]),
    ("PRJ-00004", "8010"): (FF, "milestone", 11000, "not_due", []),
    # PRJ-00002, T&M, USD cards: Consultant 150 to 01-31 then 160, Analyst 100.
    # (2025-11 has only a rejected billable entry: no row.)
    # 2025-12: 8 h x 150 = 1,200; invoice 6002 periodStart 2025-12-01 (paid)
    ("PRJ-00002", "2025-12"): (TM, "period", 1200, "invoiced", []),
    # 2026-01: 8 x 150 + 6 x 150 + expense 250.50 = 1,200 + 900 + 250.50 = 2,350.50
    # (rejected 2 h, non-billable 3 h and the non-billable 80.00 expense add nothing);
    # invoice 6004 for the month is voided -> ready
    ("PRJ-00002", "2026-01"): (TM, "period", 2350.50, "ready", []),
    # 2026-02: approved 8 x 160 + 5 x 150 (old rate -> RATE_MISMATCH) + Paula 4 x 100
    # + approved expense 120.00 without receipt (MISSING_RECEIPT)
    # = 1,280 + 750 + 400 + 120 = 2,550; Paula's 3 h are submitted (UNAPPROVED_TIME),
    # the 300.00 expense is submitted (UNAPPROVED_EXPENSES). Pending CR 6005: ignored (T&M).
    ("PRJ-00002", "2026-02"): (TM, "period", 2550, "blocked",
                               ["MISSING_RECEIPT", "RATE_MISMATCH", "UNAPPROVED_EXPENSES",
                                "UNAPPROVED_TIME"]),
    # 2026-03 ends on 03-31 >= as-of -> not_due. Approved billable:
    # Alice 8 + 20 + 16 + 7 = 51 h x 160 = 8,160; Nico 8 + 8 = 16 h x 160 = 2,560;
    # Paula 6 h x 100 = 600 -> 11,320 (drafts and submitted entries add nothing)
    ("PRJ-00002", "2026-03"): (TM, "period", 11320, "not_due", []),
    # PRJ-00003 (no ERP job): 4 h x 160 = 640
    ("PRJ-00003", "2026-02"): (TM, "period", 640, "blocked", ["NO_ACTIVE_PROJECT_CODE"]),
    # PRJ-00005 (PO 7003 rejected): 2 h x 100 = 200; its draft 0.00 expense is quarantined
    ("PRJ-00005", "2026-02"): (TM, "period", 200, "blocked", ["UNAPPROVED_PURCHASE_ORDER"]),
}


@pytest.mark.slow
def test_billing_readiness_every_item(scenario):
    billing = scenario["billing"]
    assert set(billing) == set(BILLING)
    for key, expected in BILLING.items():
        assert billing[key] == expected, key


# --- marts.process_kpis -----------------------------------------------------------------
@pytest.mark.slow
def test_process_kpis(scenario):
    kpis = scenario["kpis"]
    assert set(kpis) == {
        "contract_to_launch_days_median", "invoice_on_time_rate", "timesheet_on_time_rate",
        "billable_utilization", "ready_to_bill_amount", "blocked_amount",
        "integration_error_rate", "change_request_cycle_days_median"}
    # Deal contract_signed_date -> project created_at date (UTC):
    # 9001 10-01 -> 10-11 = 10; 9002 10-20 -> 11-03 (23:30Z) = 14; 9003 01-05 -> 01-12 = 7;
    # 9004 11-01 -> 11-21 = 20; (9005 has no signed date, 9006 no project).
    # Median of 7, 10, 14, 20 = (10 + 14) / 2 = 12
    assert kpis["contract_to_launch_days_median"] == (12, None, None)
    # Invoiced milestones: 8000 accepted 12-12, invoiced 12-15 (3 days: on time);
    # 8001 01-16 -> 01-18 (2: on time); 8002 02-13 -> 02-20 (7: late). 2 / 3
    value, numerator, denominator = kpis["invoice_on_time_rate"]
    assert (numerator, denominator) == (2, 3)
    assert value == pytest.approx(2 / 3, abs=5e-5)
    # W1..W4: on_time Alice W1, W3, Paula W3, Nico W2, W4 = 5; late Alice W2, W4,
    # Paula W4 = 3; missing Paula W2, Nico W3 = 2 (not_expected left out). 5 / 10
    assert kpis["timesheet_on_time_rate"] == (0.5, 5, 10)
    # W1..W4 billable / capacity: Alice (24 + 20 + 28 + 14) / (40 + 40 + 32 + 28) = 86/140,
    # Paula (0 + 0 + 6 + 0) / (0 + 18 + 16 + 16) = 6/50, Nico (18 + 0 + 16) / (24 + 32 + 40)
    # = 34/96, Omar 0/0 -> 126 / 286 = 0.44056
    value, numerator, denominator = kpis["billable_utilization"]
    assert (numerator, denominator) == (126, 286)
    assert value == pytest.approx(126 / 286, abs=5e-5)
    # ready: 15,000 (8003) + 4,000 (8008) + 2,350.50 (PRJ-00002 2026-01) = 21,350.50
    assert kpis["ready_to_bill_amount"] == (21350.50, None, None)
    # blocked: 7,000 + 6,000 + 5,000 + 20,000 + 2,550 + 640 + 200 = 41,390
    assert kpis["blocked_amount"] == (41390, None, None)
    # No faults: 0 failed of every request the sandbox answered (one run per ingest DAG,
    # ERP token requests included)
    assert kpis["integration_error_rate"] == (0, 0, scenario["requests"])
    # Decided change requests: 6001 01-05 -> 01-09 = 4; 6002 02-02 23:30 -> 02-03 00:30
    # = 1 (dates, not hours); 6003 02-20 -> 03-02 = 10 (February has 28 days).
    # Median of 1, 4, 10 = 4 (6004 and 6005 are pending)
    assert kpis["change_request_cycle_days_median"] == (4, None, None)
