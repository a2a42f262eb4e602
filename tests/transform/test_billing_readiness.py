"""marts.billing_readiness (+ blockers) and the money KPIs, every status and blocking
reason worked out by hand. as_of = Wed 2026-03-04."""

from __future__ import annotations

from decimal import Decimal

import pytest

from psops.transform.runner import run_transform
from tests.transform.conftest import (
    AS_OF,
    billing_line,
    change_request,
    erp_job,
    expense,
    hris_employee,
    invoice,
    load_hris,
    milestone,
    psa_project,
    purchase_order,
    rate_card,
    rows,
    time_entry,
)

D = Decimal
U = "u@x.com"
ACC = "2026-02-02T10:00:00Z"


def load_projects_and_milestones(raw) -> None:
    raw.load("psa_projects", [
        psa_project(10, "PRJ-00010", billing_type="fixed_fee"),
        psa_project(20, "PRJ-00020", billing_type="fixed_fee"),
        psa_project(30, "PRJ-00030"),                 # time and materials, USD
        psa_project(40, "PRJ-00040"),                 # time and materials, no ERP job
    ])
    raw.load("erp_jobs", [erp_job(110, "PRJ-00010"), erp_job(120, "PRJ-00020", status="inactive"),
                          erp_job(130, "PRJ-00030")])
    raw.load("psa_milestones", [
        milestone(101, 10, "PRJ-00010", 1000, "2026-02-01", accepted_at=ACC),      # ready
        milestone(102, 10, "PRJ-00010", 2000, "2026-01-05", accepted_at="2026-01-10T10:00:00Z"),
        milestone(103, 10, "PRJ-00010", 3000, "2026-04-01", status="completed"),   # not_due
        milestone(104, 10, "PRJ-00010", 4000, "2026-03-01", status="completed", evidence=False),
        milestone(105, 10, "PRJ-00010", 500, "2026-04-01", accepted_at="2026-03-10T09:00:00Z"),
        milestone(106, 10, "PRJ-00010", 600, "2026-02-15", accepted_at=ACC),
        milestone(107, 10, "PRJ-00010", 700, "2026-02-20", accepted_at=ACC),
        milestone(108, 10, "PRJ-00010", 100, "2026-01-05", accepted_at="2026-01-10T10:00:00Z"),
        milestone(201, 20, "PRJ-00020", 800, "2026-02-10", accepted_at=ACC),
    ])


def load_billing_documents(raw) -> None:
    raw.load("erp_billing_milestones", [
        billing_line(1, 110, "PRJ-00010", 101, 1000.004),   # |1000.004 - 1000| = 0.004 <= 0.005
        billing_line(6, 110, "PRJ-00010", 106, 600.01),     # |600.01 - 600| = 0.01 > 0.005
        billing_line(7, 110, "PRJ-00010", 107, 700),
        billing_line(21, 120, "PRJ-00020", 201, 800),
    ])
    raw.load("erp_invoices", [
        invoice(1, 110, "PRJ-00010", "2026-01-13", 2000, milestone_id=102),            # +3 days
        invoice(2, 110, "PRJ-00010", "2026-02-25", 700, status="voided", milestone_id=107),
        invoice(3, 110, "PRJ-00010", "2026-01-14", 100, status="paid", milestone_id=108),  # +4 days
        invoice(4, 130, "PRJ-00030", "2026-01-03", 100, status="paid",
                period_start="2025-12-01", period_end="2025-12-31"),
    ])
    raw.load("psa_change_requests", [change_request(1, 20, "PRJ-00020", status="pending"),
                                     change_request(2, 10, "PRJ-00010", status="approved",
                                                    decided_at="2026-01-07T10:00:00Z")])
    raw.load("erp_purchase_orders", [purchase_order(1, 120, "PRJ-00020", status="pendingApproval"),
                                     purchase_order(2, 110, "PRJ-00010", status="approved")])
    raw.load("erp_rate_cards", [
        rate_card(1, "Consultant", 100, "2025-01-01", "2026-01-31"),
        rate_card(2, "Consultant", 110, "2026-02-01", None),
        rate_card(3, "Consultant", 90, "2025-01-01", None, currency="EUR"),  # other currency
    ])


def load_time_and_expenses(raw) -> None:
    p30 = {"project_id": 30, "code": "PRJ-00030"}
    raw.load("psa_time_entries", [
        time_entry(1, "2026-01-15", 10, U, rate=100, **p30),                 # Jan: 10 x 100 = 1000
        time_entry(2, "2026-01-16", 5, U, billable=False, rate=None, **p30), # non-billable
        time_entry(3, "2026-02-10", 8, U, rate=110, **p30),                  # Feb: 880
        time_entry(4, "2026-02-11", 2, U, rate=None, **p30),                 # no rate: 0, RATE_MISMATCH
        time_entry(5, "2026-02-12", 4, U, rate=100, **p30),                  # card says 110: RATE_MISMATCH
        time_entry(6, "2026-02-13", 3, U, rate=110, status="submitted", **p30),  # UNAPPROVED_TIME
        time_entry(7, "2025-12-10", 1, U, rate=100, **p30),                  # Dec: invoiced
        time_entry(8, "2026-03-02", 2, U, rate=110, **p30),                  # Mar: not_due
        time_entry(9, "2025-11-10", 2, U, rate=100, status="rejected", **p30),  # no Nov row
        time_entry(10, "2026-01-20", 1, U, rate=100, project_id=40, code="PRJ-00040"),
    ])
    raw.load("psa_expenses", [
        expense(1, "2026-01-20", 250, U, **p30),                              # Jan: +250
        expense(2, "2026-02-14", 40, U, status="draft", **p30),               # UNAPPROVED_EXPENSES
        expense(3, "2026-02-15", 60, U, receipt=False, **p30),                # +60, MISSING_RECEIPT
        expense(4, "2026-02-16", 999, U, billable=False, **p30),              # not billable
    ])


@pytest.fixture
def billing(wh, raw):
    load_hris(raw, [hris_employee(1, U)])
    load_projects_and_milestones(raw)
    load_billing_documents(raw)
    load_time_and_expenses(raw)
    run_transform(AS_OF)
    return wh


def readiness(conn):
    return {
        (code, item): (item_type, amount, status, reasons)
        for code, item, item_type, amount, status, reasons in rows(
            conn, "SELECT project_code, item_id, item_type, amount, status, blocking_reasons "
            "FROM marts.billing_readiness WHERE as_of = %s", AS_OF)
    }


def test_fixed_fee_milestones(billing):
    r = readiness(billing)
    m = "PRJ-00010"
    # accepted, evidence, line within 0.005, active job, no pending CR, PO approved
    assert r[(m, "101")] == ("milestone", D("1000.00"), "ready", [])
    # a non-voided invoice carries milestoneExternalId 102
    assert r[(m, "102")] == ("milestone", D("2000.00"), "invoiced", [])
    # due Apr 1 (after as_of), only completed
    assert r[(m, "103")] == ("milestone", D("3000.00"), "not_due", [])
    # due Mar 1, not accepted, no evidence, no schedule line (sorted by code point)
    assert r[(m, "104")] == ("milestone", D("4000.00"), "blocked",
                             ["MILESTONE_NOT_ACCEPTED", "MISSING_EVIDENCE", "NO_BILLING_SCHEDULE"])
    # due Apr 1 and accepted only on Mar 10 (after as_of) -> not_due
    assert r[(m, "105")] == ("milestone", D("500.00"), "not_due", [])
    # line 600.01 vs 600: differs by 0.01 > 0.005
    assert r[(m, "106")] == ("milestone", D("600.00"), "blocked", ["BILLING_AMOUNT_MISMATCH"])
    # its only invoice is voided -> not invoiced; otherwise fine -> ready
    assert r[(m, "107")] == ("milestone", D("700.00"), "ready", [])
    # job inactive, pending change request, PO pendingApproval on the job
    assert r[("PRJ-00020", "201")] == ("milestone", D("800.00"), "blocked",
                                       ["NO_ACTIVE_PROJECT_CODE", "PENDING_CHANGE_REQUEST",
                                        "UNAPPROVED_PURCHASE_ORDER"])


def test_time_and_materials_months(billing):
    r = readiness(billing)
    t = "PRJ-00030"
    # Jan: 10 h x 100 = 1000 + approved expense 250 = 1250.00; rates match the Jan card
    assert r[(t, "2026-01")] == ("period", D("1250.00"), "ready", [])
    # Feb: 8 x 110 = 880 + 2 x (no rate) 0 + 4 x 100 = 400 (approved entries)
    #      + approved expense 60 = 1340.00; the submitted entry and draft expense add nothing
    assert r[(t, "2026-02")] == ("period", D("1340.00"), "blocked",
                                 ["MISSING_RECEIPT", "RATE_MISMATCH", "UNAPPROVED_EXPENSES",
                                  "UNAPPROVED_TIME"])
    # Dec: invoice 4 for job 130 with periodStart 2025-12-01 -> invoiced; 1 x 100
    assert r[(t, "2025-12")] == ("period", D("100.00"), "invoiced", [])
    # Mar: the month ends Mar 31 >= as_of -> not_due; 2 x 110 = 220
    assert r[(t, "2026-03")] == ("period", D("220.00"), "not_due", [])
    # Nov: only a rejected entry -> no row
    assert (t, "2025-11") not in r
    # project 40 has no ERP job at all: 1 x 100 = 100
    assert r[("PRJ-00040", "2026-01")] == ("period", D("100.00"), "blocked", ["NO_ACTIVE_PROJECT_CODE"])


def test_blocked_rows_trace_to_the_blocking_records(billing):
    got = set(rows(billing, "SELECT project_code, item_id, reason, blocking_entity, blocking_record_id "
                   "FROM marts.billing_readiness_blockers WHERE as_of = %s", AS_OF))
    assert got == {
        ("PRJ-00010", "104", "MILESTONE_NOT_ACCEPTED", "milestone", "104"),
        ("PRJ-00010", "104", "MISSING_EVIDENCE", "milestone", "104"),
        ("PRJ-00010", "104", "NO_BILLING_SCHEDULE", "milestone", "104"),
        ("PRJ-00010", "106", "BILLING_AMOUNT_MISMATCH", "billing_schedule_line", "6"),
        ("PRJ-00020", "201", "NO_ACTIVE_PROJECT_CODE", "project", "20"),
        ("PRJ-00020", "201", "PENDING_CHANGE_REQUEST", "change_request", "1"),
        ("PRJ-00020", "201", "UNAPPROVED_PURCHASE_ORDER", "purchase_order", "1"),
        ("PRJ-00030", "2026-02", "RATE_MISMATCH", "time_entry", "4"),
        ("PRJ-00030", "2026-02", "RATE_MISMATCH", "time_entry", "5"),
        ("PRJ-00030", "2026-02", "UNAPPROVED_TIME", "time_entry", "6"),
        ("PRJ-00030", "2026-02", "UNAPPROVED_EXPENSES", "expense", "2"),
        ("PRJ-00030", "2026-02", "MISSING_RECEIPT", "expense", "3"),
        ("PRJ-00040", "2026-01", "NO_ACTIVE_PROJECT_CODE", "project", "40"),
    }
    # every blocked row has blockers and nothing else has
    assert rows(billing, """SELECT count(*) FROM marts.billing_readiness r WHERE r.as_of = %s AND
                 (r.status = 'blocked') <> EXISTS (SELECT 1 FROM marts.billing_readiness_blockers b
                  WHERE b.as_of = r.as_of AND b.project_id = r.project_id AND b.item_id = r.item_id)""",
                AS_OF) == [(0,)]


def test_money_kpis(billing):
    kpis = {k: (v, n, d) for k, v, n, d in rows(
        billing, "SELECT kpi, value, numerator, denominator FROM marts.process_kpis WHERE as_of = %s", AS_OF)}
    # ready: 101 (1000) + 107 (700) + PRJ-00030 Jan (1250) = 2950.00
    assert kpis["ready_to_bill_amount"] == (D("2950.00"), None, None)
    # blocked: 104 (4000) + 106 (600) + 201 (800) + PRJ-00030 Feb (1340) + PRJ-00040 Jan (100) = 6840.00
    assert kpis["blocked_amount"] == (D("6840.00"), None, None)
    # invoiced milestones with an accepted date: 102 (accepted Jan 10, invoiced Jan 13: 3 days,
    # on time) and 108 (Jan 10 -> Jan 14: 4 days, late); 107's only invoice is voided
    # -> 1 / 2 = 0.5
    assert kpis["invoice_on_time_rate"] == (D("0.5"), D(1), D(2))


def test_project_margin(billing):
    # PRJ-00030 January, approved entries: billable 10 h x 100 = 1000 revenue; cost at the
    # HRIS cost rate 50: (10 + 5 non-billable) x 50 = 750; margin 250; 250 / 1000 = 0.25
    got = rows(billing, "SELECT hours, billable_hours, revenue, cost, margin, margin_pct, "
               "hours_without_cost_rate FROM marts.project_margin WHERE as_of = %s "
               "AND project_code = 'PRJ-00030' AND month_start = '2026-01-01'", AS_OF)
    assert got == [(D(15), D(10), D("1000.00"), D("750.00"), D("250.00"), D("0.2500"), D(0))]


def test_a_period_is_invoiced_only_by_an_invoice_on_the_projects_job(billing, raw):
    raw.load("erp_invoices", [
        # names PRJ-00030 but sits on job 110 (PRJ-00010's): not PRJ-00030's invoice
        invoice(5, 110, "PRJ-00030", "2026-02-03", 1250, period_start="2026-01-01",
                period_end="2026-01-31"),
        # on PRJ-00030's own job 130: invoices February
        invoice(6, 130, "PRJ-00030", "2026-03-03", 1340, period_start="2026-02-01",
                period_end="2026-02-28"),
    ])
    run_transform(AS_OF)
    r = readiness(billing)
    assert r[("PRJ-00030", "2026-01")] == ("period", D("1250.00"), "ready", [])
    assert r[("PRJ-00030", "2026-02")] == ("period", D("1340.00"), "invoiced", [])
    # finance hears of the invoice on the other job; the record is kept (warning)
    assert rows(billing, "SELECT record_key, severity, source_system, status FROM ops.exceptions "
                "WHERE rule_id = 'invoice.code_on_other_job'") == [("5", "warning", "erp", "open")]
