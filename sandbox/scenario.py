"""A tiny, hand-made dataset for tests: every mart formula and every blocking reason.
(Over 300 lines: the records are data, listed one by one so a reader can check each.)

    from sandbox.scenario import build_scenario_dataset, SCENARIO_TODAY
    sb = start_sandbox(dataset=build_scenario_dataset, port=0)   # as-of 2026-03-31

Tens of explicit records (4 employees, 5 projects, 12 milestones, ~40 time entries),
so that tests/test_scenario_dags.py can work out every mart value by hand. The
as-of date is a Tuesday; its weeks (Monday starts):

    W1 2026-03-02   W2 2026-03-09   W3 2026-03-16 (holiday Wed 03-18)
    W4 2026-03-23   W5 2026-03-30 (current week, as-of Tue 03-31)

People (HRIS id, PSA user id):
    101/3001 Alice Consultant  40 h, target 80, hired 2024-01-08
    102/3002 Paula Analyst     20 h (part time), target 50, hired 2026-02-02
    103/3003 Nico Consultant   40 h, target 75, hired Wednesday 2026-03-11
    104/3004 Omar Operations   empty standard hours, no target, hired 2026-03-16

Projects (USD): PRJ-00001 fixed fee (job active); PRJ-00002 T&M (job active, PO
approved, a pending CR that T&M ignores); PRJ-00003 T&M without an ERP job;
PRJ-00004 fixed fee (job inactive, PO pendingApproval, pending CR); PRJ-00005 T&M
(job active, PO rejected).

The records below are relative to the fixed as-of date; `today` only has to be it.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from sandbox.dataset import Dataset, crm_table, erp_table, psa_table
from sandbox.isotime import at, day_number, iso_ms, iso_s, parse_time
from sandbox.timeentries_store import TimeEntryStore
from sandbox.timesheets import NOTES, ROLE_NAMES, STATUSES

SCENARIO_TODAY = date(2026, 3, 31)
D = date.fromisoformat


def _t(text: str | None) -> int | None:
    """Epoch seconds of '2026-03-09T12:00:00' (UTC) or None."""
    return None if text is None else parse_time(text + ("" if text.endswith("Z") else "Z"))


# --- HRIS ---------------------------------------------------------------------------
EMPLOYEES = (  # id, name, e-mail, title, department, hours/week, target %, hired
    ("101", "Alice Adams", "alice.adams@psops-demo.com", "Consultant", "Consulting", "40", "80",
     "2024-01-08"),
    ("102", "Paula Patel", "paula.patel@psops-demo.com", "Analyst", "Consulting", "20", "50",
     "2026-02-02"),
    ("103", "Nico Novak", "nico.novak@psops-demo.com", "Consultant", "Engineering", "40", "75",
     "2026-03-11"),
    ("104", "Omar Okafor", "omar.okafor@psops-demo.com", "People Partner", "Operations", None,
     None, "2026-03-16"),
)
PSA_USER = {"101": 3001, "102": 3002, "103": 3003, "104": 3004}
HOLIDAYS = (("9001", "New Year's Day", "2026-01-01"), ("9002", "Company Day", "2026-03-18"))
TIME_OFF = (  # id, employee, type, unit, status, {day: amount}
    ("1201", "101", "Vacation", "days", "approved", {"2026-03-23": "1"}),
    ("1202", "101", "Personal", "hours", "approved", {"2026-03-26": "4"}),
    ("1203", "102", "Vacation", "days", "approved",
     {"2026-02-28": "0", "2026-03-01": "0", "2026-03-02": "1", "2026-03-03": "1",
      "2026-03-04": "1", "2026-03-05": "1", "2026-03-06": "1"}),
    ("1204", "102", "Personal", "days", "approved", {"2026-03-10": "0.5"}),
    ("1205", "102", "Sick", "hours", "approved", {"2026-03-24": "6"}),
    ("1206", "103", "Vacation", "days", "denied", {"2026-03-24": "1"}),  # not approved: no leave
)
LEAVE_TYPE_IDS = {"Vacation": "78", "Sick": "79", "Personal": "80"}


def _employee(row: tuple) -> dict:
    hris_id, name, email, title, department, hours, target, hired = row
    return {"id": hris_id, "displayName": name, "workEmail": email, "jobTitle": title,
            "department": department, "location": "New York", "status": "Active",
            "hireDate": hired, "terminationDate": "0000-00-00",
            "customStandardHoursPerWeek": hours, "customCostRate": "75.00",
            "customTargetUtilization": target}


def _time_off(row: tuple, names: dict) -> dict:
    request_id, employee, kind, unit, status, dates = row
    first, last = min(dates), max(dates)
    changed = (D(first) - timedelta(days=14)).isoformat()
    total = sum(float(v) for v in dates.values())
    return {"id": request_id, "employeeId": employee, "name": names[employee],
            "status": {"lastChanged": changed, "lastChangedByUserId": "2369", "status": status},
            "start": first, "end": last, "created": changed,
            "type": {"id": LEAVE_TYPE_IDS[kind], "name": kind},
            "amount": {"unit": unit, "amount": f"{total:g}"}, "notes": {}, "dates": dict(dates)}


# --- CRM ----------------------------------------------------------------------------
COMPANIES = (("5001", "Acme Corp", "1001"), ("5002", "Globex Group", "1002"))
DEALS = (  # id, company, stage, closed (date), contract signed, project id, amount, billing
    ("9001", "5001", "closedwon", "2025-09-30", "2025-10-01", 7001, "60000.00", "fixed_fee"),
    ("9002", "5001", "closedwon", "2025-10-18", "2025-10-20", 7002, "120000.00",
     "time_and_materials"),
    ("9003", "5002", "closedwon", "2026-01-02", "2026-01-05", 7003, "30000.00",
     "time_and_materials"),
    ("9004", "5002", "closedwon", "2025-10-30", "2025-11-01", 7004, "31000.00", "fixed_fee"),
    ("9005", "5002", "closedwon", "2026-01-20", None, 7005, "10000.00", "time_and_materials"),
    ("9006", "5001", "closedwon", "2026-03-21", "2026-03-20", None, "45000.00", "fixed_fee"),
    ("9007", "5002", "contractsent", "2026-04-20", None, None, "25000.00", "fixed_fee"),
)


def _company(row: tuple) -> dict:
    crm_id, name, erp_id = row
    modified = iso_ms(at(D("2025-06-01"), 10) * 1000 + 123)
    props = {"name": name, "domain": name.split(" ")[0].lower() + ".example.com",
             "region": "NA", "erp_customer_id": erp_id, "createdate": modified,
             "hs_lastmodifieddate": modified, "hs_object_id": crm_id}
    return {"id": crm_id, "properties": props, "createdAt": modified, "updatedAt": modified,
            "archived": False}


def _deal(row: tuple) -> dict:
    deal_id, company, stage, closed, signed, project, amount, billing = row
    close_ms = at(D(closed), 15, 30) * 1000 + 250
    created = iso_ms(close_ms - 40 * 86_400_000)
    modified = iso_ms(close_ms + 3_600_000)
    props = {"dealname": f"Deal {deal_id}", "amount": amount, "deal_currency_code": "USD",
             "dealstage": stage, "closedate": iso_ms(close_ms), "company_id": company,
             "billing_type": billing, "region": "NA", "service_line": "Analytics",
             "contract_signed_date": signed, "sow_reference": f"SOW-{deal_id}" if signed else None,
             "psa_project_id": str(project) if project else None, "createdate": created,
             "hs_lastmodifieddate": modified, "hs_object_id": deal_id}
    return {"id": deal_id, "properties": props, "createdAt": created, "updatedAt": modified,
            "archived": False}


# --- PSA ----------------------------------------------------------------------------
PROJECTS = (  # id, code, billing type, deal, company, created_at, job status (None = no job)
    (7001, "PRJ-00001", "fixed_fee", "9001", "5001", "2025-10-11T09:00:00", "active"),
    (7002, "PRJ-00002", "time_and_materials", "9002", "5001", "2025-11-03T23:30:00", "active"),
    (7003, "PRJ-00003", "time_and_materials", "9003", "5002", "2026-01-12T08:00:00", None),
    (7004, "PRJ-00004", "fixed_fee", "9004", "5002", "2025-11-21T10:00:00", "inactive"),
    (7005, "PRJ-00005", "time_and_materials", "9005", "5002", "2026-01-26T10:00:00", "active"),
)
PROJECT_REFS = {p[0]: {"id": p[0], "code": p[1], "name": f"Project {p[1]}"} for p in PROJECTS}
MILESTONES = (  # id, project, amount, due, status, completed, accepted, evidence
    (8000, 7001, 8000.0, "2025-12-12", "accepted", "2025-12-11T16:00:00", "2025-12-12T17:00:00",
     True),
    (8001, 7001, 10000.0, "2026-01-15", "accepted", "2026-01-14T16:00:00", "2026-01-16T11:00:00",
     True),
    (8002, 7001, 12000.0, "2026-02-13", "accepted", "2026-02-12T16:00:00", "2026-02-13T10:00:00",
     True),
    (8003, 7001, 15000.0, "2026-03-20", "accepted", "2026-03-19T16:00:00", "2026-03-23T09:00:00",
     True),
    (8004, 7001, 7000.0, "2026-03-25", "completed", "2026-03-24T16:00:00", None, False),
    (8005, 7001, 6000.0, "2026-03-26", "accepted", "2026-03-25T16:00:00", "2026-03-27T10:00:00",
     True),
    (8006, 7001, 5000.0, "2026-03-27", "accepted", "2026-03-26T16:00:00", "2026-03-27T11:00:00",
     True),
    (8007, 7001, 9000.0, "2026-04-30", "planned", None, None, False),
    (8008, 7001, 4000.0, "2026-04-15", "accepted", "2026-03-29T16:00:00", "2026-03-30T15:00:00",
     True),
    (8009, 7004, 20000.0, "2026-03-10", "accepted", "2026-03-09T16:00:00", "2026-03-11T10:00:00",
     True),
    (8010, 7004, 11000.0, "2026-05-15", "planned", None, None, False),
    (8011, 7001, 0.0, "2026-03-15", "accepted", "2026-03-14T16:00:00", "2026-03-16T10:00:00",
     True),  # milestone.amount_positive: quarantined
)
CHANGE_REQUESTS = (  # id, project, status, requested_at, decided_at
    (6001, 7001, "approved", "2026-01-05T10:00:00", "2026-01-09T16:00:00"),
    (6002, 7002, "approved", "2026-02-02T23:30:00", "2026-02-03T00:30:00"),
    (6003, 7002, "rejected", "2026-02-20T09:00:00", "2026-03-02T09:00:00"),
    (6004, 7004, "pending", "2026-03-20T10:00:00", None),
    (6005, 7002, "pending", "2026-03-25T10:00:00", None),
)
EXPENSES = (  # id, project, user, day, cost, billable, status, receipt
    (500001, 7002, "101", "2026-01-20", 250.50, True, "approved", True),
    (500002, 7002, "101", "2026-01-21", 80.00, False, "approved", False),
    (500003, 7002, "101", "2026-02-19", 120.00, True, "approved", False),
    (500004, 7002, "102", "2026-02-20", 300.00, True, "submitted", True),
    (500005, 7005, "102", "2026-02-24", 0.00, True, "draft", True),  # amount_positive: quarantined
)
# Time entries: id, user, project, day, hours, billable, rate, role, status, submitted, approved
ON_W1 = ("2026-03-09T12:00:00", "2026-03-10T09:00:00")  # exactly at W1's deadline: on time
TIME_ENTRIES = (
    # Alice (101), older months: Nov only rejected, Dec invoiced, Jan ready, Feb blocked
    (1001, "101", 7002, "2025-11-12", 4, True, 150, "Consultant", "rejected",
     "2025-11-17T09:00:00", None),
    (1002, "101", 7002, "2025-12-10", 8, True, 150, "Consultant", "approved",
     "2025-12-15T09:00:00", "2025-12-16T09:00:00"),
    (1003, "101", 7002, "2026-01-14", 8, True, 150, "Consultant", "approved",
     "2026-01-19T09:00:00", "2026-01-20T09:00:00"),
    (1004, "101", 7002, "2026-01-15", 6, True, 150, "Consultant", "approved",
     "2026-01-19T09:00:00", "2026-01-20T09:00:00"),
    (1005, "101", 7002, "2026-01-16", 2, True, 150, "Consultant", "rejected",
     "2026-01-19T09:00:00", None),
    (1006, "101", 7002, "2026-01-16", 3, False, None, "Consultant", "approved",
     "2026-01-19T09:00:00", "2026-01-20T09:00:00"),
    (1007, "101", 7002, "2026-02-10", 8, True, 160, "Consultant", "approved",
     "2026-02-16T09:00:00", "2026-02-17T09:00:00"),
    (1008, "101", 7002, "2026-02-12", 5, True, 150, "Consultant", "approved",  # old rate
     "2026-02-16T09:00:00", "2026-02-17T09:00:00"),
    (1009, "101", 7003, "2026-02-17", 4, True, 160, "Consultant", "approved",
     "2026-02-23T09:00:00", "2026-02-24T09:00:00"),
    # Alice, W1..W5
    (1101, "101", 7002, "2026-03-02", 8, True, 160, "Consultant", "approved", *ON_W1),
    (1102, "101", 7001, "2026-03-03", 16, True, 160, "Consultant", "approved", *ON_W1),
    (1103, "101", 7001, "2026-03-04", 6, False, None, "Consultant", "approved", *ON_W1),
    (1104, "101", 7001, "2026-03-05", 30, True, 160, "Consultant", "approved",  # hours_range
     *ON_W1),
    (1105, "101", 7002, "2026-03-10", 20, True, 160, "Consultant", "approved",
     "2026-03-16T12:00:01", "2026-03-17T09:00:00"),  # one second late
    (1106, "101", 7001, "2026-03-11", 10, False, None, "Consultant", "approved",
     "2026-03-16T09:00:00", "2026-03-17T09:00:00"),
    (1107, "101", 7002, "2026-03-16", 16, True, 160, "Consultant", "approved",
     "2026-03-23T08:00:00", "2026-03-23T10:00:00"),
    (1108, "101", 7001, "2026-03-17", 12, True, 160, "Consultant", "approved",
     "2026-03-23T08:00:00", "2026-03-23T10:00:00"),
    (1109, "101", 7001, "2026-03-19", 4, False, None, "Consultant", "approved",
     "2026-03-23T08:00:00", "2026-03-23T10:00:00"),
    (1110, "101", 7002, "2026-03-24", 7, True, 160, "Consultant", "approved",
     "2026-03-30T09:00:00", "2026-03-30T15:00:00"),
    (1111, "101", 7001, "2026-03-25", 7, True, 160, "Consultant", "approved",
     "2026-03-30T09:00:00", "2026-03-30T15:00:00"),
    (1112, "101", 7001, "2026-03-27", 2, False, None, "Consultant", "draft", None, None),
    (1113, "101", 7002, "2026-03-30", 8, True, 160, "Consultant", "draft", None, None),
    (1114, "101", 7002, "2026-04-01", 8, True, 160, "Consultant", "draft", None,  # future_date
     None),
    # Paula (102)
    (2001, "102", 7002, "2026-02-11", 4, True, 100, "Analyst", "approved",
     "2026-02-16T09:00:00", "2026-02-16T15:00:00"),
    (2002, "102", 7002, "2026-02-13", 3, True, 100, "Analyst", "submitted",
     "2026-02-16T09:00:00", None),
    (2003, "102", 7005, "2026-02-18", 2, True, 100, "Analyst", "approved",
     "2026-02-23T09:00:00", "2026-02-24T09:00:00"),
    (2004, "102", 7002, "2026-03-11", 5, True, 100, "Analyst", "draft", None, None),
    (2005, "102", 7002, "2026-03-16", 6, True, 100, "Analyst", "approved", None,
     "2026-03-23T10:00:00"),  # no submitted_at: approved_at is the submission time
    (2006, "102", 7001, "2026-03-17", 2, False, None, "Analyst", "approved", None,
     "2026-03-23T10:00:00"),
    (2007, "102", 7002, "2026-03-25", 9, True, 100, "Analyst", "submitted",
     "2026-03-31T08:00:00", None),
    # Nico (103)
    (3001, "103", 7002, "2026-03-11", 8, True, 160, "Consultant", "approved",
     "2026-03-16T10:00:00", "2026-03-16T14:00:00"),
    (3002, "103", 7001, "2026-03-12", 10, True, 160, "Consultant", "approved",
     "2026-03-16T10:00:00", "2026-03-16T14:00:00"),
    (3003, "103", 7001, "2026-03-13", 4, False, None, "Consultant", "approved",
     "2026-03-16T10:00:00", "2026-03-16T14:00:00"),
    (3004, "103", 7002, "2026-03-23", 8, True, 160, "Consultant", "approved",
     "2026-03-30T11:59:59", "2026-03-30T15:00:00"),
    (3005, "103", 7001, "2026-03-24", 8, True, 160, "Consultant", "approved",
     "2026-03-30T11:59:59", "2026-03-30T15:00:00"),
    (3006, "103", 7001, "2026-03-26", 4, True, 160, "Consultant", "rejected",
     "2026-03-31T09:00:00", None),  # late but rejected: ignored
    # Omar (104)
    (4001, "104", 7001, "2026-03-17", 3, False, None, "Operations", "approved",
     "2026-03-23T09:00:00", "2026-03-23T12:00:00"),
)

# --- ERP ----------------------------------------------------------------------------
RATE_CARDS = (  # id, role, rate, from, to
    ("401", "Consultant", 150.0, "2025-01-01", "2026-01-31"),
    ("402", "Consultant", 160.0, "2026-02-01", None),
    ("403", "Analyst", 100.0, "2025-01-01", None),
)
BILLING_LINES = ((3001, 8000, 8000.0), (3002, 8001, 10000.0), (3003, 8002, 12000.0),
                 (3004, 8003, 15000.0), (3005, 8004, 7000.0), (3006, 8006, 5500.0),
                 (3007, 8007, 9000.0), (3008, 8008, 4000.0), (3009, 8009, 20000.0),
                 (3010, 8010, 11000.0))  # none for 8005; 8006 is 500 more than its milestone
INVOICES = (  # id, project, tranDate, amount, status, milestone, periodStart
    ("6001", 7001, "2025-12-15", 8000.0, "paid", "8000", None),
    ("6002", 7002, "2026-01-04", 1200.0, "paid", None, "2025-12-01"),
    ("6003", 7001, "2026-01-18", 10000.0, "paid", "8001", None),
    ("6004", 7002, "2026-02-04", 2350.5, "voided", None, "2026-01-01"),
    ("6005", 7001, "2026-02-20", 12000.0, "open", "8002", None),
    ("6006", 7001, "2026-03-24", 15000.0, "voided", "8003", None),
)
PURCHASE_ORDERS = (("7001", 7002, "approved"), ("7002", 7004, "pendingApproval"),
                   ("7003", 7005, "rejected"))


def _job_ref(project_id: int) -> dict:
    return {"id": str(2000 + project_id - 7000), "refName": PROJECT_REFS[project_id]["code"]}


def _month_end(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def build_scenario_dataset(today: date | None = None) -> Dataset:
    """The scenario as a sandbox Dataset (fresh objects on every call)."""
    today = today or SCENARIO_TODAY
    if today != SCENARIO_TODAY:
        raise ValueError(f"the scenario is written for {SCENARIO_TODAY}, not {today}")
    now_s = at(today, 12)
    names = {row[0]: row[1] for row in EMPLOYEES}
    employees = [_employee(row) for row in EMPLOYEES]
    time_off = [_time_off(row, names) for row in TIME_OFF]
    holidays = [{"id": int(h), "type": "holiday", "name": name, "start": day, "end": day}
                for h, name, day in HOLIDAYS]

    crm = {"companies": crm_table([_company(c) for c in COMPANIES]),
           "deals": crm_table([_deal(d) for d in DEALS])}

    user_ref = {e[0]: {"id": PSA_USER[e[0]], "name": e[1], "email": e[2]} for e in EMPLOYEES}
    projects = []
    for pid, code, billing, deal, company, created, _job in PROJECTS:
        created_s = _t(created)
        projects.append({
            "id": pid, "code": code, "name": PROJECT_REFS[pid]["name"], "crm_deal_id": deal,
            "crm_company_id": company, "billing_type": billing, "status": "active",
            "starts_on": (D(created[:10]) + timedelta(days=7)).isoformat(),
            "ends_on": "2026-12-31", "budget_hours": 2000.0,
            "fee": sum(m[2] for m in MILESTONES if m[1] == pid) if billing == "fixed_fee"
            else None, "currency": "USD", "region": "NA", "project_manager": user_ref["101"],
            "created_at": iso_s(created_s), "updated_at": iso_s(created_s + 7200)})
    milestones = []
    for mid, pid, amount, due, status, completed, accepted, evidence in MILESTONES:
        created_s = _t(next(p[5] for p in PROJECTS if p[0] == pid)) + 7200
        times = [t for t in (created_s, _t(completed), _t(accepted)) if t]
        milestones.append({
            "id": mid, "project": dict(PROJECT_REFS[pid]), "name": f"Milestone {mid}",
            "amount": amount, "due_on": due, "status": status,
            "completed_at": completed and completed + "Z", "accepted_at": accepted and accepted + "Z",
            "evidence": [{"document_id": f"DOC-{mid}", "name": "Acceptance certificate.pdf",
                          "uploaded_at": iso_s(_t(completed) + 1800)}] if evidence else [],
            "created_at": iso_s(created_s), "updated_at": iso_s(max(times))})
    assignments = [
        {"id": 9001 + n, "project": dict(PROJECT_REFS[pid]), "user": user_ref[uid], "role": role,
         "starts_on": "2026-01-01", "ends_on": "2026-12-31", "hours_per_week": 20.0,
         "created_at": "2025-12-20T10:00:00Z", "updated_at": "2025-12-20T11:00:00Z"}
        for n, (pid, uid, role) in enumerate(((7001, "101", "Consultant"),
                                              (7002, "101", "Consultant"),
                                              (7002, "102", "Analyst"),
                                              (7002, "103", "Consultant")))]
    expenses = []
    for xid, pid, uid, day, cost, billable, status, receipt in EXPENSES:
        created_s = at(D(day), 18)
        submitted = created_s + 86400 if status in ("submitted", "approved") else None
        approved = created_s + 2 * 86400 if status == "approved" else None
        expenses.append({
            "id": xid, "spent_date": day, "total_cost": cost, "billable": billable,
            "expense_category": {"id": 1, "name": "Travel"},
            "receipt": {"url": f"https://files.psa.example/receipts/{xid}.pdf",
                        "file_name": f"receipt-{xid}.pdf"} if receipt else None,
            "status": status, "user": user_ref[uid], "project": dict(PROJECT_REFS[pid]),
            "created_at": iso_s(created_s),
            "updated_at": iso_s(max(t for t in (created_s, submitted, approved) if t))})
    change_requests = [
        {"id": cid, "project": dict(PROJECT_REFS[pid]), "title": f"Scope change {cid}",
         "amount_delta": 1500.0, "status": status, "requested_at": requested + "Z",
         "decided_at": decided and decided + "Z", "created_at": requested + "Z",
         "updated_at": (decided or requested) + "Z"}
        for cid, pid, status, requested, decided in CHANGE_REQUESTS]
    psa = {"projects": psa_table(projects), "milestones": psa_table(milestones),
           "assignments": psa_table(assignments), "expenses": psa_table(expenses),
           "change_requests": psa_table(change_requests)}

    users = [user_ref[e[0]] for e in EMPLOYEES]
    user_index = {e[0]: n for n, e in enumerate(EMPLOYEES)}
    project_list = [dict(PROJECT_REFS[p[0]]) for p in PROJECTS]
    project_index = {p[0]: n for n, p in enumerate(PROJECTS)}
    rows = []
    for (tid, uid, pid, day, hours, billable, rate, role, status, submitted,
         approved) in TIME_ENTRIES:
        created_s = at(D(day), 18)
        sub_s, app_s = _t(submitted), _t(approved)
        rows.append((tid, day_number(D(day)), float(hours), billable,
                     np.nan if rate is None else float(rate), ROLE_NAMES.index(role),
                     user_index[uid], project_index[pid], 0 if billable else 2,
                     NOTES.index("Build and test"), STATUSES.index(status),
                     -1 if sub_s is None else sub_s, -1 if app_s is None else app_s, False,
                     created_s, max(t for t in (created_s, sub_s, app_s) if t is not None)))
    names_ = ("id", "spent", "hours", "billable", "rate", "role", "user", "project", "task",
              "note", "status", "submitted", "approved", "billed", "created", "updated")
    dtypes = (np.int64, np.int32, float, bool, float, np.int8, np.int16, np.int16, np.int8,
              np.int8, np.int8, np.int64, np.int64, bool, np.int64, np.int64)
    cols = {name: np.array([r[k] for r in rows], dtype)
            for k, (name, dtype) in enumerate(zip(names_, dtypes, strict=True))}
    store = TimeEntryStore(cols, users, project_list)

    jobs = [{"id": _job_ref(pid)["id"], "entityId": code, "companyName": f"Project {code}",
             "customer": {"id": "1001" if company == "5001" else "1002", "refName": "Customer"},
             "status": job, "externalId": str(pid), "startDate": created[:10],
             "subsidiary": {"id": "1", "refName": "NA"},
             "lastModifiedDate": iso_s(_t(created) + 86400)}
            for pid, code, _b, _d, company, created, job in PROJECTS if job]
    erp = {
        "customer": erp_table([
            {"id": erp_id, "companyName": name, "externalId": crm_id,
             "lastModifiedDate": "2025-06-01T11:00:00Z"} for crm_id, name, erp_id in COMPANIES]),
        "job": erp_table(jobs),
        "billingMilestone": erp_table([
            {"id": str(lid), "job": _job_ref(next(m[1] for m in MILESTONES if m[0] == mid)),
             "externalId": str(mid), "amount": amount,
             "billDate": next(m[3] for m in MILESTONES if m[0] == mid),
             "lastModifiedDate": iso_s(at(D("2025-12-01"), 8) + lid)}
            for lid, mid, amount in BILLING_LINES]),
        "customrecord_rate_card": erp_table([
            {"id": rid, "role": role, "currency": "USD", "rate": rate, "effectiveFrom": begin,
             "effectiveTo": end, "lastModifiedDate": iso_s(at(D(begin), 8) - 20 * 86400)}
            for rid, role, rate, begin, end in RATE_CARDS]),
        "invoice": erp_table([
            {"id": iid, "tranId": f"INV-{int(iid) - 6000:05d}", "job": _job_ref(pid),
             "tranDate": tran, "amount": amount, "status": status,
             "milestoneExternalId": milestone, "periodStart": period,
             "periodEnd": _month_end(D(period)).isoformat() if period else None,
             "lastModifiedDate": iso_s(at(D(tran), 10))}
            for iid, pid, tran, amount, status, milestone, period in INVOICES]),
        "purchaseOrder": erp_table([
            {"id": poid, "tranId": f"PO-{int(poid) - 7000:05d}", "job": _job_ref(pid),
             "vendor": {"id": "801", "refName": "Northwind Subcontracting"},
             "amount": 10000.0, "status": status,
             "lastModifiedDate": iso_s(at(D("2026-01-30"), 10) + int(poid))}
            for poid, pid, status in PURCHASE_ORDERS]),
    }
    scenarios = {"scenario": "hand-made (sandbox/scenario.py)"}
    return Dataset(0, today, now_s, employees, time_off, holidays, crm, psa, store, erp,
                   scenarios)
