"""The synthetic firm: reproducible, relative to 'today', and every mart made interesting.

`readiness` re-states warehouse.md's billing_readiness rules on the raw dataset so
that the test fails if a planted blocking reason ever disappears.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import orjson
import pytest

from sandbox.dataset import build_dataset

REASONS = {"MILESTONE_NOT_ACCEPTED", "MISSING_EVIDENCE", "NO_ACTIVE_PROJECT_CODE",
           "NO_BILLING_SCHEDULE", "BILLING_AMOUNT_MISMATCH", "PENDING_CHANGE_REQUEST",
           "UNAPPROVED_PURCHASE_ORDER", "UNAPPROVED_TIME", "UNAPPROVED_EXPENSES",
           "MISSING_RECEIPT", "RATE_MISMATCH"}


@pytest.fixture(scope="module")
def ds():
    return build_dataset(seed=42)


@pytest.fixture(scope="module")
def rows(ds):
    return readiness(ds)


def snapshot(d) -> bytes:
    entries, _ = d.time_entries.page(None, 0, 10**8)
    tables = {**{f"psa.{k}": t.all() for k, t in d.psa.items()},
              **{f"erp.{k}": t.all() for k, t in d.erp.items()},
              **{f"crm.{k}": t.all() for k, t in d.crm.items()}}
    return orjson.dumps({"entries": entries, "tables": tables, "employees": d.employees,
                         "time_off": d.time_off, "holidays": d.holidays})


def test_same_seed_same_bytes_other_seed_differs(ds):
    assert snapshot(ds) == snapshot(build_dataset(seed=42))
    assert snapshot(ds) != snapshot(build_dataset(seed=43))


def test_everything_is_relative_to_today():
    d = build_dataset(seed=1, today=date(2025, 12, 31), scale=0.4)
    entries, _ = d.time_entries.page(None, 0, 10**8)
    future = [e for e in entries if e["spent_date"] > "2025-12-31"]
    assert len(future) == 1  # the one planted future-date anomaly
    assert max(e["updated_at"] for e in entries) <= "2025-12-31T18:00:00Z"
    assert min(e["spent_date"] for e in entries) >= "2025-01-01"
    cards = d.erp["customrecord_rate_card"].all()
    assert {c["effectiveTo"] for c in cards if c["effectiveTo"]} == {"2025-05-31"}  # six months back


def _month_end(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def _card_rate(cards, role, currency, day):
    for c in cards:
        if (c["role"], c["currency"]) == (role, currency) and c["effectiveFrom"] <= day and (
                c["effectiveTo"] is None or day <= c["effectiveTo"]):
            return c["rate"]
    return None


def _clean_entries(d, project_ids):
    emails = {e["workEmail"].lower() for e in d.employees}
    entries, _ = d.time_entries.page(None, 0, 10**8)
    today = d.today.isoformat()
    return [e for e in entries if 0 < e["hours"] <= 24 and e["project"]["id"] in project_ids
            and e["user"]["email"].lower() in emails and e["spent_date"] <= today]


def readiness(d) -> list[dict]:
    today = d.today.isoformat()
    projects = d.psa["projects"].all()
    jobs = d.erp["job"].all()
    active_codes = {j["entityId"] for j in jobs if j["status"] == "active"}
    job_of = {j["entityId"]: j["id"] for j in jobs}
    lines = {b["externalId"]: b for b in d.erp["billingMilestone"].all()}
    invoices = [i for i in d.erp["invoice"].all() if i["status"] != "voided"]
    billed_ms = {i["milestoneExternalId"] for i in invoices}
    billed_periods = {(i["job"]["id"], i["periodStart"]) for i in invoices}
    pending = {c["project"]["id"] for c in d.psa["change_requests"].all()
               if c["status"] == "pending"}
    bad_po = {p["job"]["id"] for p in d.erp["purchaseOrder"].all()
              if p["status"] in ("pendingApproval", "rejected")}
    cards = d.erp["customrecord_rate_card"].all()
    entries = _clean_entries(d, {p["id"] for p in projects})
    expenses = [x for x in d.psa["expenses"].all() if x["total_cost"] > 0]
    by_project: dict[int, list] = {}
    for e in entries:
        by_project.setdefault(e["project"]["id"], []).append(e)
    rows = []
    for p in projects:
        job = job_of.get(p["code"])
        common = set()
        if p["code"] not in active_codes:
            common.add("NO_ACTIVE_PROJECT_CODE")
        if job in bad_po:
            common.add("UNAPPROVED_PURCHASE_ORDER")
        if p["billing_type"] == "fixed_fee":
            for m in d.psa["milestones"].find(lambda m, p=p: m["project"]["id"] == p["id"]):
                if m["amount"] <= 0:
                    continue
                accepted = m["status"] == "accepted" and (m["accepted_at"] or "")[:10] <= today
                reasons = set(common)
                if str(m["id"]) in billed_ms:
                    status = "invoiced"
                elif m["due_on"] > today and not accepted:
                    status = "not_due"
                else:
                    reasons |= {"MILESTONE_NOT_ACCEPTED"} if not accepted else set()
                    reasons |= {"MISSING_EVIDENCE"} if not m["evidence"] else set()
                    line = lines.get(str(m["id"]))
                    reasons |= {"NO_BILLING_SCHEDULE"} if line is None else set()
                    if line and abs(line["amount"] - m["amount"]) > 0.005:
                        reasons.add("BILLING_AMOUNT_MISMATCH")
                    reasons |= {"PENDING_CHANGE_REQUEST"} if p["id"] in pending else set()
                    status = "blocked" if reasons else "ready"
                rows.append({"code": p["code"], "item": m["id"], "status": status,
                             "reasons": reasons if status == "blocked" else set()})
            continue
        mine = by_project.get(p["id"], [])
        months = sorted({e["spent_date"][:7] for e in mine
                         if e["billable"] and e["status"] != "rejected"})
        for month in months:
            first = date.fromisoformat(month + "-01")
            month_entries = [e for e in mine if e["spent_date"][:7] == month and e["billable"]]
            month_exp = [x for x in expenses if x["project"]["id"] == p["id"]
                         and x["spent_date"][:7] == month and x["billable"]]
            reasons = set(common)
            if any(e["status"] in ("draft", "submitted") for e in month_entries):
                reasons.add("UNAPPROVED_TIME")
            if any(x["status"] in ("draft", "submitted") for x in month_exp):
                reasons.add("UNAPPROVED_EXPENSES")
            if any(x["status"] == "approved" and not x["receipt"] for x in month_exp):
                reasons.add("MISSING_RECEIPT")
            for e in month_entries:
                if e["status"] == "approved" and e["billable_rate"] != _card_rate(
                        cards, e["role"], p["currency"], e["spent_date"]):
                    reasons.add("RATE_MISMATCH")
            if (job, first.isoformat()) in billed_periods:
                status = "invoiced"
            elif _month_end(first) >= d.today:
                status = "not_due"
            else:
                status = "blocked" if reasons else "ready"
            rows.append({"code": p["code"], "item": month, "status": status,
                         "reasons": reasons if status == "blocked" else set()})
    return rows


def test_billing_readiness_has_every_status_and_every_blocking_reason(rows):
    statuses = Counter(r["status"] for r in rows)
    assert {"invoiced", "not_due", "ready", "blocked"} <= set(statuses)
    assert set().union(*(r["reasons"] for r in rows)) == REASONS


@pytest.mark.parametrize("scenario, reason", [
    ("ff_not_accepted", "MILESTONE_NOT_ACCEPTED"), ("ff_no_evidence", "MISSING_EVIDENCE"),
    ("ff_inactive_job", "NO_ACTIVE_PROJECT_CODE"), ("ff_no_job", "NO_ACTIVE_PROJECT_CODE"),
    ("ff_no_billing_line", "NO_BILLING_SCHEDULE"),
    ("ff_amount_mismatch", "BILLING_AMOUNT_MISMATCH"),
    ("ff_pending_cr", "PENDING_CHANGE_REQUEST"), ("ff_po_pending", "UNAPPROVED_PURCHASE_ORDER"),
    ("ff_po_rejected", "UNAPPROVED_PURCHASE_ORDER"), ("tm_unapproved_time", "UNAPPROVED_TIME"),
    ("tm_unapproved_expenses", "UNAPPROVED_EXPENSES"), ("tm_missing_receipt", "MISSING_RECEIPT"),
    ("tm_rate_mismatch", "RATE_MISMATCH"), ("tm_no_job", "NO_ACTIVE_PROJECT_CODE"),
    ("tm_po_pending", "UNAPPROVED_PURCHASE_ORDER"),
])
def test_each_scenario_project_is_blocked_for_its_reason(ds, rows, scenario, reason):
    code = ds.scenarios["projects"][scenario]
    reasons = set().union(*(r["reasons"] for r in rows if r["code"] == code))
    assert reason in reasons


@pytest.mark.parametrize("scenario", ["ff_ready", "tm_ready", "tm_voided_invoice"])
def test_ready_scenarios_have_a_ready_item(ds, rows, scenario):
    code = ds.scenarios["projects"][scenario]
    assert any(r["status"] == "ready" for r in rows if r["code"] == code)


def test_data_quality_seeds(ds):
    entries, _ = ds.time_entries.page(None, 0, 10**8)
    emails = {e["workEmail"].lower() for e in ds.employees}
    project_ids = {p["id"] for p in ds.psa["projects"].all()}
    assert any(e["hours"] <= 0 for e in entries) and any(e["hours"] > 24 for e in entries)
    assert any(e["project"]["id"] not in project_ids for e in entries)
    assert any(e["user"]["email"].lower() not in emails for e in entries)
    assert any(e["spent_date"] > ds.today.isoformat() for e in entries)
    terminated = {e["workEmail"].lower(): e["terminationDate"] for e in ds.employees
                  if e["terminationDate"] != "0000-00-00"}
    assert any(e["spent_date"] > terminated.get(e["user"]["email"].lower(), "9999")
               for e in entries)
    assert any(x["total_cost"] <= 0 for x in ds.psa["expenses"].all())
    assert any(m["amount"] <= 0 for m in ds.psa["milestones"].all())
    assert any(e["customStandardHoursPerWeek"] in (None, "", "0") for e in ds.employees)
    psa_emails = {e["user"]["email"] for e in entries}
    assert any(m != m.lower() and m.lower() in emails for m in psa_emails)


def test_crm_and_project_set_up_cases(ds):
    deals = {d["id"]: d["properties"] for d in ds.crm["deals"].all()}
    with_project = {p["crm_deal_id"] for p in ds.psa["projects"].all()}
    companies = {c["id"]: c["properties"] for c in ds.crm["companies"].all()}
    cutoff = (ds.today - timedelta(days=5)).isoformat()
    orphans = [i for i, p in deals.items() if p["dealstage"] == "closedwon"
               and i not in with_project and p["closedate"][:10] <= cutoff]
    assert len(orphans) >= 4
    valid = [i for i in orphans if deals[i]["billing_type"] and float(deals[i]["amount"]) > 0
             and deals[i]["contract_signed_date"] and deals[i]["region"]
             and companies[deals[i]["company_id"]]["erp_customer_id"]]
    assert ds.scenarios["deals"]["setup_valid_ff"] in valid
    codes = {j["entityId"] for j in ds.erp["job"].all()}
    assert any(p["status"] == "active" and p["code"] not in codes
               for p in ds.psa["projects"].all())


def test_people_cases(ds):
    people = ds.scenarios["people"]
    for key in ("terminated", "recent_hires", "empty_standard_hours", "over_utilised",
                "under_utilised", "late_timesheets", "missing_timesheets", "draft_timesheets",
                "case_different_email"):
        assert people[key], key
    regions = Counter(e["location"] for e in ds.employees)
    assert len(regions) == 6
    statuses = Counter(e["status"] for e in ds.employees)
    assert statuses["Inactive"] >= 6
