"""CRM deals: one closed-won deal per client project, set-up candidates, pipeline, filler."""

from __future__ import annotations

import random
from datetime import date, timedelta

from sandbox.isotime import at, day_of, iso_ms
from sandbox.people import REGION_CURRENCY
from sandbox.portfolio import SERVICE_LINES, Company, ProjectPlan

OPEN_STAGES = ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
               "contractsent")

# Closed-won deals without a PSA project: (key, days before today it closed, overrides).
SETUP_CANDIDATES = (
    ("setup_valid_ff", 10, {}),
    ("setup_valid_tm", 6, {"billing_type": "time_and_materials"}),
    ("setup_missing_billing_type", 12, {"billing_type": None}),
    ("setup_no_erp_customer", 9, {"no_erp": True}),
    ("setup_zero_amount", 8, {"amount": "0.00"}),
    ("setup_recent", 2, {}),
)


def _deal(deal_id: str, company: Company | None, stage: str, close_ms: int, amount: str | None,
          billing: str | None, signed: date | None, project_id: int | None,
          modified_ms: int, line: str) -> dict:
    name = company.name if company else "Unknown"
    region = company.region if company else None
    created = iso_ms(close_ms - 40 * 86_400_000)
    props = {
        "dealname": f"{name} - {line}", "amount": amount,
        "deal_currency_code": REGION_CURRENCY.get(region or "NA"), "dealstage": stage,
        "closedate": iso_ms(close_ms), "company_id": company.crm_id if company else None,
        "billing_type": billing, "region": region, "service_line": line,
        "contract_signed_date": signed.isoformat() if signed else None,
        "sow_reference": f"SOW-{deal_id}" if signed else None,
        "psa_project_id": str(project_id) if project_id else None,
        "createdate": created, "hs_lastmodifieddate": iso_ms(modified_ms),
        "hs_object_id": deal_id,
    }
    return {"id": deal_id, "properties": props, "createdAt": created,
            "updatedAt": iso_ms(modified_ms), "archived": False}


def project_deals(rng: random.Random, plans: list[ProjectPlan]) -> list[dict]:
    deals = []
    for plan in plans[1:]:
        close_s = plan.created_s - rng.randint(2, 15) * 86400 - rng.randint(0, 20000)
        signed = day_of(close_s // 86400) - timedelta(days=rng.randint(0, 2))
        amount = plan.fee if plan.fee else len(plan.team) * 60000.0
        billing = "time_and_materials" if plan.billing_type != "fixed_fee" else "fixed_fee"
        deals.append(_deal(plan.deal_id, plan.company, "closedwon", close_s * 1000 + 250,
                           f"{amount:.2f}", billing, signed, plan.psa_id,
                           (plan.created_s + 3600) * 1000 + rng.randint(0, 999),
                           plan.name.rsplit(" ", 2)[-2] + " " + plan.name.rsplit(" ", 1)[-1]))
    return deals


def setup_deals(rng: random.Random, companies: list[Company], today: date,
                first_id: int) -> tuple[list[dict], dict[str, str]]:
    """Closed-won deals with a signed contract and no project yet."""
    with_erp = [c for c in companies if c.erp_customer_id]
    without_erp = [c for c in companies if not c.erp_customer_id]
    deals, keys = [], {}
    for n, (key, days_ago, overrides) in enumerate(SETUP_CANDIDATES):
        company = (without_erp or with_erp)[0] if overrides.get("no_erp") else with_erp[
            (n * 5 + 3) % len(with_erp)]
        close_s = at(today - timedelta(days=days_ago), 15, 30)
        deal_id = str(first_id + n)
        billing = overrides.get("billing_type", "fixed_fee")
        amount = overrides.get("amount", f"{rng.randint(8, 30) * 5000:.2f}")
        deals.append(_deal(deal_id, company, "closedwon", close_s * 1000 + 125, amount, billing,
                           today - timedelta(days=days_ago + 1), None,
                           (close_s + 7200) * 1000 + 500, SERVICE_LINES[n % 6]))
        keys[key] = deal_id
    return deals, keys


def pipeline_deals(rng: random.Random, companies: list[Company], today: date, first_id: int,
                   count: int) -> list[dict]:
    """Open and lost deals; used for the default pipeline and the large-CRM filler."""
    deals = []
    base_s = at(today - timedelta(days=700))
    span_s = at(today) - base_s
    for n in range(count):
        company = companies[n % len(companies)]
        stage = "closedlost" if n % 5 == 0 else OPEN_STAGES[n % 4]
        modified_s = base_s + (span_s * n) // max(count, 1) + rng.randint(0, 59)
        close_s = modified_s + rng.randint(-20, 60) * 86400
        deals.append(_deal(str(first_id + n), company, stage, close_s * 1000,
                           f"{rng.randint(2, 60) * 2500:.2f}",
                           rng.choice(("fixed_fee", "time_and_materials")), None, None,
                           modified_s * 1000 + rng.randint(0, 999), SERVICE_LINES[n % 6]))
    return deals
