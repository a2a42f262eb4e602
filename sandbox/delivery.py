"""PSA delivery records: milestones, change requests and expenses."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from sandbox.isotime import at, iso_s
from sandbox.portfolio import ProjectPlan

EXPENSE_CATEGORIES = ({"id": 1, "name": "Travel"}, {"id": 2, "name": "Lodging"},
                      {"id": 3, "name": "Meals"}, {"id": 4, "name": "Software"})


@dataclass
class MilestonePlan:
    psa_id: int
    plan: ProjectPlan
    name: str
    amount: float
    due: date
    status: str
    completed_s: int | None
    accepted_s: int | None
    evidence: bool
    invoiced: bool  # an ERP invoice should exist
    billing_line: str  # "ok", "none" or "mismatch"
    latest_invoice_s: int = 2**40  # an invoice may not be dated after the dataset's today


def _due_dates(rng: random.Random, plan: ProjectPlan, today: date) -> list[date]:
    current = today - timedelta(days=rng.randint(5, 25))
    past = [current - timedelta(days=60 * k) for k in (3, 2, 1)]
    past = [d for d in past if d >= plan.starts + timedelta(days=20)]
    future = [today + timedelta(days=25 + 60 * k) for k in range(3)]
    future = [d for d in future if d <= plan.ends] or [plan.ends]
    if plan.status == "closed":
        return [d for d in (plan.ends - timedelta(days=60 * k) for k in (3, 2, 1, 0))]
    return past + [current] + future


def _milestone(rng: random.Random, number: int, plan: ProjectPlan, k: int, due: date,
               today: date) -> MilestonePlan:
    amount = float(rng.randint(8, 40) * 1000)
    if due > today:
        return MilestonePlan(number, plan, f"Phase {k + 1} delivery", amount, due, "planned",
                             None, None, False, False, "ok")
    completed = at(due - timedelta(days=1), 16)
    accepted = at(due + timedelta(days=rng.randint(0, 4)), 11)
    past = due < today - timedelta(days=40)
    invoiced = past or plan.scenario == "ff_closed" or (
        plan.scenario == "ff_generic" and number % 2 == 0)
    return MilestonePlan(number, plan, f"Phase {k + 1} delivery", amount, due, "accepted",
                         completed, min(accepted, at(today, 9)), True, invoiced, "ok",
                         at(today))


def _apply_scenario(current: MilestonePlan) -> None:
    """Plant the project's billing-readiness situation on its current milestone."""
    scenario = current.plan.scenario
    if scenario in ("ff_not_accepted", "ff_multi"):
        current.status, current.accepted_s = "completed", None
    if scenario in ("ff_no_evidence", "ff_multi"):
        current.evidence = False
    if scenario in ("ff_no_billing_line", "ff_multi"):
        current.billing_line = "none"
    if scenario == "ff_amount_mismatch":
        current.billing_line = "mismatch"


def make_milestones(rng: random.Random, plans: list[ProjectPlan], today: date) -> list:
    milestones: list[MilestonePlan] = []
    number = 8001
    for plan in plans:
        if plan.billing_type != "fixed_fee":
            continue
        own = []
        for k, due in enumerate(_due_dates(rng, plan, today)):
            own.append(_milestone(rng, number, plan, k, due, today))
            number += 1
        current = max((m for m in own if m.due <= today), key=lambda m: m.due)
        _apply_scenario(current)
        if plan.scenario == "ff_no_job":
            for m in own:
                m.invoiced, m.billing_line = False, "none"
        plan.fee = sum(m.amount for m in own)
        milestones += own
    generic = [m for m in milestones if m.plan.scenario == "ff_generic" and m.status == "planned"]
    if generic:
        generic[-1].amount = 0.0  # seeded anomaly: milestone.amount_positive
    return milestones


def milestone_record(m: MilestonePlan) -> dict:
    created = m.plan.created_s + 7200
    times = [t for t in (created, m.completed_s, m.accepted_s) if t]
    evidence = [{"document_id": f"DOC-{m.psa_id}", "name": "Acceptance certificate.pdf",
                 "uploaded_at": iso_s((m.completed_s or created) + 1800)}] if m.evidence else []
    return {
        "id": m.psa_id, "project": m.plan.ref(), "name": m.name, "amount": m.amount,
        "due_on": m.due.isoformat(), "status": m.status,
        "completed_at": iso_s(m.completed_s) if m.completed_s else None,
        "accepted_at": iso_s(m.accepted_s) if m.accepted_s else None, "evidence": evidence,
        "created_at": iso_s(created), "updated_at": iso_s(max(times)),
    }


def change_request_records(rng: random.Random, plans: list[ProjectPlan], today: date) -> list:
    records, number = [], 6001
    for plan in plans[1:]:
        count = rng.randint(0, 2)
        pending = plan.scenario in ("ff_pending_cr", "tm_ready")
        for k in range(count + pending):
            is_pending = pending and k == count
            requested = (at(today - timedelta(days=6), 10) if is_pending else
                         at(max(plan.starts, today - timedelta(days=300)) + timedelta(
                             days=rng.randint(5, 120)), 10))
            decided = None if is_pending else requested + rng.randint(1, 25) * 86400
            if decided and decided > at(today, 9):
                decided = at(today, 9)
            status = "pending" if is_pending else ("approved" if rng.random() < 0.7 else
                                                   "rejected")
            records.append({
                "id": number, "project": plan.ref(), "title": f"Scope change {k + 1}",
                "amount_delta": float(rng.randint(-5, 25) * 1000 or 1500), "status": status,
                "requested_at": iso_s(requested),
                "decided_at": iso_s(decided) if decided else None,
                "created_at": iso_s(requested), "updated_at": iso_s(decided or requested),
            })
            number += 1
    return records


def _months(first: date, last: date) -> list[date]:
    month, months = first.replace(day=1), []
    while month <= last:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months


def _expense(number: int, plan: ProjectPlan, person, day: date, cost: float, billable: bool,
             category: dict, status_times: tuple, receipt: bool) -> dict:
    status, submitted, approved = status_times
    created = at(day, 18) + number % 3000
    updated = max(t for t in (created, submitted, approved) if t)
    return {
        "id": number, "spent_date": day.isoformat(), "total_cost": cost, "billable": billable,
        "expense_category": dict(category),
        "receipt": {"url": f"https://files.psa.example/receipts/{number}.pdf",
                    "file_name": f"receipt-{number}.pdf"} if receipt else None,
        "status": status, "user": person.ref(), "project": plan.ref(with_name=True),
        "created_at": iso_s(created), "updated_at": iso_s(updated),
    }


def make_expenses(rng: random.Random, plans: list[ProjectPlan], start: date, today: date,
                  now_s: int) -> list[dict]:
    from sandbox.workflow import approval_times

    records, number = [], 500_001
    prev_month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    for plan in plans[1:]:
        for month in _months(max(plan.starts, start), min(plan.ends, today)):
            forced = plan.scenario in ("tm_unapproved_expenses", "tm_missing_receipt") and (
                month == prev_month)
            for k in range(rng.randint(1, 2) + forced):
                day = month + timedelta(days=rng.randint(0, 26))
                staff = [p for p in plan.team if p.hire <= day <= (p.termination or day)]
                if day > today or not staff or not plan.starts <= day <= plan.ends:
                    continue
                category = EXPENSE_CATEGORIES[rng.randint(0, 3)]
                billable = category["name"] != "Meals" or rng.random() < 0.5
                cost = float(rng.randint(40, 1200)) + rng.randint(0, 99) / 100
                times = approval_times(day, "on_time", rng.randint(0, 3000), now_s)
                receipt = billable or rng.random() < 0.5
                if forced and k == 0:
                    billable = True
                    if plan.scenario == "tm_unapproved_expenses":
                        times = ("submitted", times[1], None)
                    else:
                        times, receipt = ("approved",) + times[1:], False
                elif times[0] == "approved" and rng.random() < 0.03 and month != prev_month:
                    times = ("rejected", times[1], None)
                records.append(_expense(number, plan, staff[k % len(staff)], day, cost,
                                        billable, category, times, receipt))
                number += 1
    generic = next(r for r in records if r["project"]["code"] != "PRJ-00001")
    generic["total_cost"] = 0.0  # seeded anomaly: expense.amount_positive
    return records
