"""Clients, deals and projects of the demo firm (CRM records and PSA project plans).

Each project plan carries a `scenario`, which the other generators read to
plant one billing-readiness situation per project (see README.md).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from sandbox.isotime import at, iso_ms, iso_s
from sandbox.people import REGION_CURRENCY, REGIONS, Person

FF_SCENARIOS = ("ff_ready", "ff_not_accepted", "ff_no_evidence", "ff_inactive_job",
                "ff_no_billing_line", "ff_amount_mismatch", "ff_pending_cr", "ff_po_pending",
                "ff_po_rejected", "ff_multi", "ff_no_job")
TM_SCENARIOS = ("tm_ready", "tm_unapproved_time", "tm_unapproved_expenses",
                "tm_missing_receipt", "tm_rate_mismatch", "tm_no_job", "tm_po_pending",
                "tm_voided_invoice")
SERVICE_LINES = ("Data Platform", "Cloud Migration", "ERP Rollout", "Security Review",
                 "Analytics", "Change Management")
COMPANY_WORDS = ("Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Tyrell", "Cyberdyne",
                 "Soylent", "Hooli", "Vandelay", "Wonka", "Gringotts", "Oscorp", "Aperture",
                 "Massive", "Nakatomi", "Monarch", "Sirius", "Dunder", "Pied Piper", "Blue Sun",
                 "Weyland", "Zorg", "Virtucon", "Duff", "Krusty", "Ollivander", "Bluth",
                 "Sterling", "Pearson", "Prestige", "Rekall", "Gekko", "Contoso", "Fabrikam")
COMPANY_SUFFIX = ("Corp", "Group", "Holdings", "Labs", "Industries", "AG", "Ltd", "Pty")


@dataclass
class Company:
    crm_id: str
    name: str
    region: str
    erp_customer_id: str | None
    modified_ms: int


@dataclass
class ProjectPlan:
    psa_id: int
    code: str
    name: str
    scenario: str
    billing_type: str
    status: str
    region: str
    currency: str
    starts: date
    ends: date
    company: Company | None
    deal_id: str | None
    created_s: int
    fee: float | None = None
    team: list[Person] = field(default_factory=list)
    manager: Person | None = None
    has_job: bool = True
    job_status: str = "active"

    @property
    def internal(self) -> bool:
        return self.company is None

    def ref(self, with_name: bool = False) -> dict:
        ref = {"id": self.psa_id, "code": self.code}
        if with_name:
            ref["name"] = self.name
        return ref


def make_companies(rng: random.Random, count: int, now_s: int) -> list[Company]:
    companies = []
    for n in range(count):
        word = COMPANY_WORDS[n % len(COMPANY_WORDS)]
        suffix = COMPANY_SUFFIX[(n // len(COMPANY_WORDS) + n) % len(COMPANY_SUFFIX)]
        name = f"{word} {suffix}" + (f" {n // len(COMPANY_WORDS) + 1}"
                                     if n >= len(COMPANY_WORDS) else "")
        erp_id = None if n % 9 == 8 else str(1001 + n)  # a few prospects not yet in the ERP
        modified = (now_s - rng.randint(30, 400) * 86400) * 1000 + rng.randint(0, 999)
        companies.append(Company(str(5001 + n), name, REGIONS[n % 3], erp_id, modified))
    return companies


def company_record(company: Company) -> dict:
    created = iso_ms(company.modified_ms - 86400 * 1000 * 200)
    props = {"name": company.name,
             "domain": company.name.split(" ")[0].lower() + ".example.com",
             "region": company.region, "erp_customer_id": company.erp_customer_id,
             "createdate": created, "hs_lastmodifieddate": iso_ms(company.modified_ms),
             "hs_object_id": company.crm_id}
    return {"id": company.crm_id, "properties": props, "createdAt": created,
            "updatedAt": iso_ms(company.modified_ms), "archived": False}


def _scenario_list(scale: float) -> list[str]:
    generic = max(1, round(15 * scale))
    return (list(FF_SCENARIOS) + list(TM_SCENARIOS) + ["ff_generic"] * generic
            + ["tm_generic"] * max(1, round(13 * scale)) + ["ff_closed", "tm_closed", "tm_on_hold"])


def _project_dates(rng: random.Random, scenario: str, today: date, start: date) -> tuple:
    if scenario.endswith("closed"):
        return start - timedelta(days=rng.randint(30, 120)), today - timedelta(
            days=rng.randint(20, 60)), "closed"
    if scenario.endswith("no_job"):
        return today - timedelta(days=rng.randint(70, 80)), today + timedelta(days=150), "active"
    status = "on_hold" if scenario == "tm_on_hold" else "active"
    begin = start - timedelta(days=rng.randint(0, 150)) if rng.random() < 0.6 else (
        start + timedelta(days=rng.randint(10, 150)))
    return begin, today + timedelta(days=rng.randint(45, 240)), status


def make_projects(rng: random.Random, companies: list[Company], today: date, start: date,
                  scale: float) -> list[ProjectPlan]:
    """The internal project first, then one client project per scenario slot."""
    internal = ProjectPlan(7001, "PRJ-00001", "Internal - bench, training and sales support",
                           "internal", "time_and_materials", "active", "NA", "USD",
                           start - timedelta(days=400), today + timedelta(days=365), None, None,
                           at(start - timedelta(days=405), 9))
    plans = [internal]
    clients = [c for c in companies if c.erp_customer_id]
    for n, scenario in enumerate(_scenario_list(scale), start=2):
        company = clients[(n * 7) % len(clients)]
        begin, end, status = _project_dates(rng, scenario, today, start)
        billing = "fixed_fee" if scenario.startswith("ff") else "time_and_materials"
        line = SERVICE_LINES[n % len(SERVICE_LINES)]
        plan = ProjectPlan(
            psa_id=7000 + n, code=f"PRJ-{n:05d}", name=f"{company.name} {line}",
            scenario=scenario, billing_type=billing, status=status, region=company.region,
            currency=REGION_CURRENCY[company.region], starts=begin, ends=end, company=company,
            deal_id=str(9000 + n), created_s=at(begin - timedelta(days=rng.randint(3, 12)),
                                                 rng.randint(8, 17), rng.randint(0, 59)))
        plan.has_job = not scenario.endswith("no_job")
        plan.job_status = {"active": "active", "on_hold": "inactive", "closed": "closed"}[status]
        if scenario == "ff_inactive_job":
            plan.job_status = "inactive"
        plans.append(plan)
    return plans


def staff_projects(rng: random.Random, plans: list[ProjectPlan], people: list[Person]) -> None:
    """Give each client project a team (least-loaded billable staff first) and a manager."""
    load = {p.index: 0 for p in people if p.billable_staff}
    by_index = {p.index: p for p in people}
    for plan in plans[1:]:
        size = rng.randint(3, 5)
        ranked = sorted(load, key=lambda i: (load[i], by_index[i].region != plan.region,
                                             rng.random()))
        plan.team = [by_index[i] for i in ranked[:size]]
        for member in plan.team:
            load[member.index] += 1
        managers = [m for m in plan.team if m.role in ("Manager", "Director")]
        plan.manager = managers[0] if managers else plan.team[0]
    plans[0].manager = next(p for p in people if p.role == "Director")


def project_record(plan: ProjectPlan, updated_s: int) -> dict:
    budget = None if plan.internal else float(len(plan.team) * 400)
    return {
        "id": plan.psa_id, "code": plan.code, "name": plan.name,
        "crm_deal_id": plan.deal_id,
        "crm_company_id": plan.company.crm_id if plan.company else None,
        "billing_type": plan.billing_type, "status": plan.status,
        "starts_on": plan.starts.isoformat(), "ends_on": plan.ends.isoformat(),
        "budget_hours": budget, "fee": plan.fee, "currency": plan.currency,
        "region": plan.region,
        "project_manager": plan.manager.ref() if plan.manager else None,
        "created_at": iso_s(plan.created_s), "updated_at": iso_s(updated_s),
    }


def assignment_records(plans: list[ProjectPlan], today: date) -> list[dict]:
    records = []
    number = 9_001
    for plan in plans[1:]:
        for n, member in enumerate(plan.team):
            begin = max(plan.starts, member.hire)
            end = min(plan.ends, member.termination or plan.ends)
            if end < begin:
                continue
            created = at(max(begin - timedelta(days=5), date(2000, 1, 1)), 10, n)
            records.append({
                "id": number, "project": plan.ref(), "user": member.ref(), "role": member.role,
                "starts_on": begin.isoformat(), "ends_on": end.isoformat(),
                "hours_per_week": float(40 - 8 * (n % 3)),
                "created_at": iso_s(created), "updated_at": iso_s(created + 3600),
            })
            number += 1
    del today
    return records
