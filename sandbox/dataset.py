"""The synthetic demo firm: every system's records, seeded and relative to 'today'."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from sandbox import deals as deal_gen
from sandbox import delivery, finance, leave, people, portfolio, timesheets
from sandbox.isotime import at
from sandbox.tables import RecordTable
from sandbox.timeentries_store import TimeEntryStore

DEFAULT_TODAY = date(2026, 3, 31)
DEFAULT_DEALS = 80


@dataclass
class Dataset:
    seed: int
    today: date
    now_s: int
    employees: list[dict]
    time_off: list[dict]
    holidays: list[dict]
    crm: dict[str, RecordTable]
    psa: dict[str, RecordTable]
    time_entries: TimeEntryStore
    erp: dict[str, RecordTable]
    scenarios: dict[str, object] = field(default_factory=dict)

    def max_time_s(self) -> int:
        return max(self.now_s, self.time_entries.max_updated_s())


def _iso_key(name: str):
    return lambda r: r[name]


def crm_table(records: list[dict]) -> RecordTable:
    return RecordTable(records, lambda r: r["properties"]["hs_lastmodifieddate"],
                       lambda r: int(r["id"]))


def psa_table(records: list[dict]) -> RecordTable:
    return RecordTable(records, _iso_key("updated_at"), lambda r: r["id"])


def erp_table(records: list[dict]) -> RecordTable:
    return RecordTable(records, _iso_key("lastModifiedDate"), lambda r: int(r["id"]))


def _entry_columns(ctx: timesheets.Context, seed: int, target: int | None) -> dict:
    base = timesheets.base_entries(timesheets.make_slots(ctx))
    extra = timesheets.anomaly_rows(ctx, 0)
    scaled = timesheets.scale_entries(base, None if not target else max(1, target - len(extra)))
    cols = timesheets.finish_entries(ctx, scaled, seed)
    return _append_anomalies(ctx, cols, timesheets.anomaly_rows(ctx, int(cols["id"][-1]) + 1))


def _append_anomalies(ctx: timesheets.Context, cols: dict, rows: list[dict]) -> dict:
    n = len(rows)
    role_of = [timesheets.ROLE_NAMES.index(p.role) for p in ctx.people] + [6]
    extra = {
        "id": np.array([r["id"] for r in rows], np.int64),
        "spent": np.array([r["spent"] for r in rows], np.int32),
        "hours": np.array([r["hours"] for r in rows]),
        "billable": np.array([r["billable"] for r in rows]),
        "rate": np.full(n, np.nan), "role": np.array([role_of[r["user"]] for r in rows], np.int8),
        "user": np.array([r["user"] for r in rows], np.int16),
        "project": np.array([r["project"] for r in rows], np.int16),
        "task": np.zeros(n, np.int8), "note": np.full(n, 1, np.int8),
        "status": np.array([r["status"] for r in rows], np.int8),
        "submitted": np.array([r["created"] + 60 if r["status"] else -1 for r in rows]),
        "approved": np.array([r["created"] + 120 if r["status"] else -1 for r in rows]),
        "billed": np.zeros(n, bool), "created": np.array([r["created"] for r in rows]),
    }
    extra["updated"] = np.maximum(extra["created"], extra["approved"])
    return {k: np.concatenate([cols[k], extra[k].astype(cols[k].dtype)]) for k in cols}


def _month_amounts(ctx: timesheets.Context, cols: dict, expenses: list[dict]) -> dict:
    """(plan index, month) -> approved billable time and expense value."""
    ok = cols["billable"] & (cols["status"] == 2) & ~np.isnan(cols["rate"])
    month = cols["spent"][ok].astype("datetime64[D]").astype("datetime64[M]")
    value = cols["hours"][ok] * cols["rate"][ok]
    key = cols["project"][ok].astype(np.int64) * 100_000 + month.astype(np.int64)
    uniq, inverse = np.unique(key, return_inverse=True)
    sums = np.bincount(inverse, weights=value)
    amounts = {}
    for k, s in zip(uniq.tolist(), sums.tolist(), strict=True):
        m = int(k % 100_000)
        amounts[(k // 100_000, date(1970 + m // 12, m % 12 + 1, 1))] = s
    index_of = {p.psa_id: i for i, p in enumerate(ctx.plans)}
    for e in expenses:
        if e["billable"] and e["status"] == "approved" and e["project"]["id"] in index_of:
            key2 = (index_of[e["project"]["id"]], date.fromisoformat(e["spent_date"][:8] + "01"))
            amounts[key2] = amounts.get(key2, 0.0) + e["total_cost"]
    return amounts


def build_dataset(seed: int = 42, today: date = DEFAULT_TODAY, scale: float = 1.0,
                  time_entries: int | None = None, crm_deals: int | None = None) -> Dataset:
    rng = random.Random(seed)
    now_s = at(today, 18)
    start = today - timedelta(days=364)
    staff = people.make_people(rng, max(40, round(150 * scale)), today, start)
    holidays = people.company_holidays(start - timedelta(days=60), today + timedelta(days=365))
    holiday_days = {date.fromisoformat(h["start"]) for h in holidays}
    time_off = leave.make_time_off(rng, staff, holiday_days, start, today)
    companies = portfolio.make_companies(rng, max(36, round(40 * scale)), now_s)
    plans = portfolio.make_projects(rng, companies, today, start, scale)
    portfolio.staff_projects(rng, plans, staff)
    milestones = delivery.make_milestones(rng, plans, today)

    deals = deal_gen.project_deals(rng, plans)
    setup, setup_keys = deal_gen.setup_deals(rng, companies, today, 9000 + len(plans) + 1)
    filler = max(0, (crm_deals or DEFAULT_DEALS) - len(deals) - len(setup))
    deals += setup + deal_gen.pipeline_deals(rng, companies, today,
                                             9000 + len(plans) + 1 + len(setup), filler)

    ctx = timesheets.Context(staff, plans, holiday_days, start, today, now_s)
    cols = _entry_columns(ctx, seed, time_entries)
    expenses = delivery.make_expenses(rng, plans, start, today, now_s)
    users = [p.ref() for p in staff] + [dict(timesheets.CONTRACTOR)]
    project_refs = [p.ref(with_name=True) for p in plans] + [dict(timesheets.GHOST_PROJECT)]
    store = TimeEntryStore(cols, users, project_refs)

    invoices = finance.invoice_records(
        finance.milestone_invoices(rng, milestones)
        + finance.period_invoices(plans, _month_amounts(ctx, cols, expenses), today), today)
    psa = {
        "projects": psa_table([portfolio.project_record(
            p, p.created_s + 7200 if p.status != "closed" else at(p.ends, 12)) for p in plans]),
        "milestones": psa_table([delivery.milestone_record(m) for m in milestones]),
        "assignments": psa_table(portfolio.assignment_records(plans, today)),
        "expenses": psa_table(expenses),
        "change_requests": psa_table(delivery.change_request_records(rng, plans, today)),
    }
    erp = {
        "customer": erp_table(finance.customer_records(companies, now_s)),
        "job": erp_table(finance.job_records(plans)),
        "billingMilestone": erp_table(finance.billing_line_records(milestones)),
        "customrecord_rate_card": erp_table(finance.rate_card_records(today, start)),
        "invoice": erp_table(invoices),
        "purchaseOrder": erp_table(finance.purchase_order_records(rng, plans)),
    }
    crm = {"companies": crm_table([portfolio.company_record(c) for c in companies]),
           "deals": crm_table(deals)}
    scenarios = _scenario_index(plans, milestones, setup_keys, staff, today)
    return Dataset(seed, today, now_s, [people.employee_record(p) for p in staff], time_off,
                   holidays, crm, psa, store, erp, scenarios)


def _scenario_index(plans, milestones, setup_keys, staff, today) -> dict:
    """Which records carry which planted situation (for the README and tests)."""
    index: dict[str, object] = {"deals": setup_keys}
    index["projects"] = {p.scenario: p.code for p in plans
                         if p.scenario not in ("ff_generic", "tm_generic")}
    index["current_milestones"] = {}
    for m in milestones:
        if m.plan.scenario.startswith("ff_") and m.status in ("accepted", "completed") and (
                not m.invoiced):
            index["current_milestones"].setdefault(m.plan.scenario, []).append(m.psa_id)
    index["people"] = {
        "terminated": [p.hris_id for p in staff if p.termination],
        "recent_hires": [p.hris_id for p in staff if p.hire >= today - timedelta(days=90)],
        "empty_standard_hours": [p.hris_id for p in staff if p.std_hours is None],
        "zero_standard_hours": [p.hris_id for p in staff if p.std_hours == 0],
        "over_utilised": [p.hris_id for p in staff if p.work_factor > 1],
        "under_utilised": [p.hris_id for p in staff if 0 < p.billable_share < 0.3],
        "late_timesheets": [p.hris_id for p in staff if p.habit == "late"],
        "missing_timesheets": [p.hris_id for p in staff if p.habit == "missing"],
        "draft_timesheets": [p.hris_id for p in staff if p.habit == "draft"],
        "case_different_email": [p.psa_email for p in staff if p.psa_email != p.email],
    }
    return index
