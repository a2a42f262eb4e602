"""ERP records: customers, jobs, billing schedule lines, rate cards, POs and invoices."""

from __future__ import annotations

import random
from datetime import date, timedelta

from sandbox.delivery import MilestonePlan
from sandbox.isotime import at, iso_s
from sandbox.people import REGIONS, ROLES
from sandbox.portfolio import Company, ProjectPlan

BASE_RATES = {"Analyst": 120.0, "Consultant": 160.0, "Senior Consultant": 200.0,
              "Manager": 250.0, "Director": 300.0}
CURRENCY_FACTOR = {"USD": 1.0, "EUR": 0.9, "AUD": 1.5}
RATE_RISE = 1.05
VENDORS = ({"id": "801", "refName": "Northwind Subcontracting"},
           {"id": "802", "refName": "Blue Yonder Staffing"},
           {"id": "803", "refName": "Keystone Engineering"})


def month_start(day: date) -> date:
    return day.replace(day=1)


def previous_month(day: date) -> date:
    return month_start(month_start(day) - timedelta(days=1))


def rate_change_day(today: date) -> date:
    """The mid-year rate card change: the first of the month six months back."""
    month = month_start(today)
    for _ in range(6):
        month = previous_month(month)
    return month


def card_rate(role: str, currency: str, day: date, change: date) -> float | None:
    base = BASE_RATES.get(role)
    if base is None:
        return None
    rate = base * CURRENCY_FACTOR[currency] * (RATE_RISE if day >= change else 1.0)
    return round(rate, 2)


def tm_month_invoiced(plan: ProjectPlan, month: date, today: date) -> bool:
    """Whether the sandbox issues a (non-voided) invoice for this T&M project month."""
    last_full = previous_month(today)
    if plan.billing_type == "fixed_fee" or plan.internal or not plan.has_job:
        return False
    if plan.scenario == "tm_rate_mismatch" and month == rate_change_day(today):
        return False
    if plan.scenario == "tm_voided_invoice" and month == previous_month(last_full):
        return False
    if month < last_full:
        return True
    return month == last_full and plan.scenario == "tm_generic" and plan.psa_id % 3 == 0


def customer_records(companies: list[Company], now_s: int) -> list[dict]:
    records = [{"id": "1000", "companyName": "PSOps Demo (internal)", "externalId": None,
                "lastModifiedDate": iso_s(now_s - 500 * 86400)}]
    for company in companies:
        if company.erp_customer_id:
            records.append({"id": company.erp_customer_id, "companyName": company.name,
                            "externalId": company.crm_id,
                            "lastModifiedDate": iso_s(company.modified_ms // 1000 + 3600)})
    return records


def job_ref(plan: ProjectPlan) -> dict:
    return {"id": str(2000 + plan.psa_id - 7000), "refName": plan.code}


def job_records(plans: list[ProjectPlan]) -> list[dict]:
    records = []
    for plan in plans:
        if not plan.has_job:
            continue
        customer = ({"id": plan.company.erp_customer_id, "refName": plan.company.name}
                    if plan.company else {"id": "1000", "refName": "PSOps Demo (internal)"})
        region_id = str(REGIONS.index(plan.region) + 1)
        records.append({
            "id": job_ref(plan)["id"], "entityId": plan.code, "companyName": plan.name,
            "customer": customer, "status": plan.job_status, "externalId": str(plan.psa_id),
            "startDate": plan.starts.isoformat(),
            "subsidiary": {"id": region_id, "refName": plan.region},
            "lastModifiedDate": iso_s(plan.created_s + 86400),
        })
    return records


def billing_line_records(milestones: list[MilestonePlan]) -> list[dict]:
    records, number = [], 3001
    for m in milestones:
        if m.billing_line == "none" or not m.plan.has_job:
            continue
        amount = m.amount + (1500.0 if m.billing_line == "mismatch" else 0.0)
        records.append({"id": str(number), "job": job_ref(m.plan), "externalId": str(m.psa_id),
                        "amount": amount, "billDate": m.due.isoformat(),
                        "lastModifiedDate": iso_s(m.plan.created_s + 86400 + number)})
        number += 1
    return records


def rate_card_records(today: date, start: date) -> list[dict]:
    change = rate_change_day(today)
    first = month_start(start - timedelta(days=90))
    records, number = [], 401
    for currency in CURRENCY_FACTOR:
        for role in ROLES:
            old = card_rate(role, currency, first, change)
            new = card_rate(role, currency, change, change)
            for rate, begin, end in ((old, first, change - timedelta(days=1)),
                                     (new, change, None)):
                modified = at(end + timedelta(days=1), 8) if end else at(begin - timedelta(
                    days=20), 8)
                records.append({"id": str(number), "role": role, "currency": currency,
                                "rate": rate, "effectiveFrom": begin.isoformat(),
                                "effectiveTo": end.isoformat() if end else None,
                                "lastModifiedDate": iso_s(modified)})
                number += 1
    return sorted(records, key=lambda r: (r["lastModifiedDate"], int(r["id"])))


def purchase_order_records(rng: random.Random, plans: list[ProjectPlan]) -> list[dict]:
    status_of = {"ff_po_pending": "pendingApproval", "tm_po_pending": "pendingApproval",
                 "ff_po_rejected": "rejected"}
    records, number = [], 7001
    for plan in plans[1:]:
        status = status_of.get(plan.scenario)
        if status is None and (plan.psa_id % 4 or not plan.has_job):
            continue
        status = status or ("closed" if plan.status == "closed" else "approved")
        records.append({"id": str(number), "tranId": f"PO-{number - 7000:05d}",
                        "job": job_ref(plan), "vendor": dict(VENDORS[number % 3]),
                        "amount": float(rng.randint(5, 60) * 1000), "status": status,
                        "lastModifiedDate": iso_s(plan.created_s + 5 * 86400 + number)})
        number += 1
    return records


def milestone_invoices(rng: random.Random, milestones: list[MilestonePlan]) -> list[dict]:
    invoices = []
    for m in milestones:
        if not m.invoiced or not m.accepted_s:
            continue
        delay = rng.choice((1, 1, 2, 3, 3, 6, 9))
        tran = min((m.accepted_s // 86400 + delay) * 86400, m.latest_invoice_s)
        invoices.append({"job": job_ref(m.plan), "tranDate": tran, "amount": m.amount,
                         "milestoneExternalId": str(m.psa_id), "periodStart": None,
                         "periodEnd": None, "voided": False})
    return invoices


def period_invoices(plans: list[ProjectPlan], month_amounts: dict, today: date) -> list[dict]:
    """T&M invoices from the (project index, month) amounts of approved billable work."""
    invoices = []
    for (plan_index, month), amount in sorted(month_amounts.items()):
        plan = plans[plan_index]
        voided = plan.scenario == "tm_voided_invoice" and month == previous_month(
            previous_month(today))
        if not (tm_month_invoiced(plan, month, today) or voided):
            continue
        end = (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        tran = at(end + timedelta(days=4))
        invoices.append({"job": job_ref(plan), "tranDate": tran, "amount": round(amount, 2),
                         "milestoneExternalId": None, "periodStart": month.isoformat(),
                         "periodEnd": end.isoformat(), "voided": voided})
    return invoices


def invoice_records(drafts: list[dict], today: date) -> list[dict]:
    """Number the invoices in date order and give them a status."""
    records = []
    for number, draft in enumerate(sorted(drafts, key=lambda d: (d["tranDate"],
                                                                 d["job"]["id"])), start=6001):
        tran_day = draft["tranDate"] // 86400
        status = "voided" if draft["voided"] else (
            "paid" if tran_day < (today - timedelta(days=45) - date(1970, 1, 1)).days
            else "open")
        modified = draft["tranDate"] + 3600 + (30 * 86400 if status == "paid" else 0)
        modified = min(modified, at(today, 8))
        records.append({
            "id": str(number), "tranId": f"INV-{number - 6000:05d}", "job": draft["job"],
            "tranDate": iso_s(draft["tranDate"])[:10], "amount": draft["amount"],
            "status": status, "milestoneExternalId": draft["milestoneExternalId"],
            "periodStart": draft["periodStart"], "periodEnd": draft["periodEnd"],
            "lastModifiedDate": iso_s(modified),
        })
    return records
