"""Generates the PSA time entries as numpy columns (see timeentries_store for serving).

One 'slot' per person and working day; each slot becomes a billable entry on
an assigned project and a non-billable entry on the internal project. A
target count (`time_entries`) splits the slots' entries into more, smaller
entries, so the mart figures stay about the same at any scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from sandbox.finance import (
    CURRENCY_FACTOR,
    card_rate,
    month_start,
    previous_month,
    rate_change_day,
    tm_month_invoiced,
)
from sandbox.isotime import at, day_number
from sandbox.people import ROLES, Person
from sandbox.portfolio import ProjectPlan

STATUSES = ("draft", "submitted", "approved", "rejected")
TASKS = ({"id": 11, "name": "Delivery"}, {"id": 12, "name": "Project management"},
         {"id": 21, "name": "Bench and internal"}, {"id": 22, "name": "Training"})
NOTES = ("Client workshop", "Build and test", "Status meeting", "Documentation",
         "Internal training", "Bench time", "Pre-sales support", None)
ROLE_NAMES = (*ROLES, "Operations", "Contractor")
CONTRACTOR = {"id": 3999, "name": "Pat Contractor", "email": "pat.contractor@partner.example"}
GHOST_PROJECT = {"id": 99999, "code": "PRJ-99999", "name": "Unknown project"}


@dataclass
class Context:
    people: list[Person]
    plans: list[ProjectPlan]
    holidays: set[date]
    start: date
    today: date
    now_s: int


def _assignments_by_person(plans: list[ProjectPlan]) -> dict[int, list[tuple]]:
    spans: dict[int, list[tuple]] = {}
    for plan_index, plan in enumerate(plans):
        for member in plan.team:
            spans.setdefault(member.index, []).append((plan_index, plan.starts, plan.ends))
    return spans


def _skip_missing(person: Person, day: date, today: date) -> bool:
    this_monday = today - timedelta(days=today.weekday())
    return person.habit == "missing" and this_monday - timedelta(days=14) <= day < this_monday


def make_slots(ctx: Context) -> dict[str, np.ndarray]:
    """Per person and working day: billable project, billable and non-billable hours."""
    spans = _assignments_by_person(ctx.plans)
    rows: list[tuple] = []
    for person in ctx.people:
        day = max(person.hire, ctx.start)
        last = min(person.termination or ctx.today, ctx.today)
        own = spans.get(person.index, [])
        while day <= last:
            off = ctx.holidays.__contains__(day) or day.weekday() > 4
            leave = person.leave_days.get(day, 0.0)
            if not off and leave < 1 and not _skip_missing(person, day, ctx.today):
                total = (person.std_hours or 40) / 5 * person.work_factor * (1 - leave)
                active = [i for i, b, e in own if b <= day <= e]
                billable = round(total * person.billable_share * 4) / 4 if active else 0.0
                project = active[(day.toordinal() // 7 + person.index) % len(active)] if (
                    active) else 0
                rows.append((person.index, day_number(day), project, billable,
                             round(total - billable, 2)))
            day += timedelta(days=1)
    cols = np.array(rows, dtype=np.float64).T
    return {"user": cols[0].astype(np.int32), "day": cols[1].astype(np.int32),
            "project": cols[2].astype(np.int32), "bill": cols[3], "nonbill": cols[4]}


def base_entries(slots: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Billable entry (if any hours) and non-billable entry (if any) per slot."""
    has_bill = slots["bill"] > 0
    has_non = slots["nonbill"] > 0.01
    bill_idx, non_idx = np.flatnonzero(has_bill), np.flatnonzero(has_non)
    order = np.argsort(np.concatenate([bill_idx * 2, non_idx * 2 + 1]), kind="stable")

    def pick(name: str, bill_value=None, non_value=None) -> np.ndarray:
        a = slots[name][bill_idx] if bill_value is None else np.full(len(bill_idx), bill_value)
        b = slots[name][non_idx] if non_value is None else np.full(len(non_idx), non_value)
        return np.concatenate([a, b])[order]

    return {"user": pick("user"), "day": pick("day"),
            "project": pick("project", non_value=0).astype(np.int32),
            "hours": np.concatenate([slots["bill"][bill_idx], slots["nonbill"][non_idx]])[order],
            "billable": np.concatenate([np.ones(len(bill_idx), bool),
                                        np.zeros(len(non_idx), bool)])[order]}


def scale_entries(base: dict[str, np.ndarray], target: int | None) -> dict[str, np.ndarray]:
    """Split (or sample) entries so there are exactly `target` of them."""
    count = len(base["hours"])
    if not target or target == count:
        return dict(base, part=np.zeros(count, np.int32))
    if target < count:
        keep = np.linspace(0, count - 1, target).round().astype(np.int64)
        return {k: v[keep] for k, v in base.items()} | {"part": np.zeros(target, np.int32)}
    reps = np.full(count, target // count, np.int64) + (np.arange(count) < target % count)
    out = {k: np.repeat(v, reps) for k, v in base.items()}
    out["hours"] = np.round(out["hours"] / np.repeat(reps, reps), 2)
    starts = np.repeat(np.cumsum(reps) - reps, reps)
    out["part"] = (np.arange(target) - starts).astype(np.int32)
    return out


def _month_index(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def _month_of(day: date) -> int:
    return (day.year - 1970) * 12 + day.month - 1


def _scenario_project(ctx: Context, scenario: str) -> int:
    return next((i for i, p in enumerate(ctx.plans) if p.scenario == scenario), -1)


def _statuses(ctx: Context, e: dict, mix: np.ndarray) -> tuple:
    """Status, submitted_s and approved_s (-1 for null) per entry."""
    day = e["day"].astype(np.int64)
    late_user = np.array([p.habit == "late" for p in ctx.people] + [False])
    draft_user = np.array([p.habit == "draft" for p in ctx.people] + [False])
    monday = day - (day + 3) % 7
    late = late_user[e["user"]] & (((day + 3) // 7) % 2 == 0)
    jitter = mix % 3000
    submitted = (monday + 7) * 86400 + 9 * 3600 + late * 48 * 3600 + jitter
    approved = submitted + 36 * 3600 + jitter
    status = np.where(submitted > ctx.now_s, 0, np.where(approved > ctx.now_s, 1, 2))
    this_monday = day_number(ctx.today) - ctx.today.weekday()
    status[draft_user[e["user"]] & (monday == this_monday - 21)] = 0
    months = _month_index(e["day"])
    unapproved = _scenario_project(ctx, "tm_unapproved_time")
    prev = _month_of(previous_month(ctx.today))
    held = (e["project"] == unapproved) & (months == prev) & e["billable"] & (mix % 3 == 0)
    status[held & (status == 2)] = 1
    status[(mix % 1000 < 3) & (status == 2) & ~held & (months != prev)] = 3
    sub_s = np.where(status >= 1, submitted, -1)
    app_s = np.where(status == 2, approved, -1)
    return status.astype(np.int8), sub_s, app_s


def _rates(ctx: Context, e: dict, role: np.ndarray, mix: np.ndarray) -> np.ndarray:
    change = rate_change_day(ctx.today)
    currencies = list(CURRENCY_FACTOR)
    table = np.full((len(ROLE_NAMES), len(currencies), 2), np.nan)
    for r, role_name in enumerate(ROLE_NAMES):
        for c, currency in enumerate(currencies):
            for new, day in ((0, change - timedelta(days=1)), (1, change)):
                table[r, c, new] = card_rate(role_name, currency, day, change) or np.nan
    currency = np.array([currencies.index(p.currency) for p in ctx.plans] + [0])[e["project"]]
    newer = (e["day"] >= day_number(change)).astype(np.int64)
    months = _month_index(e["day"])
    stale = (e["project"] == _scenario_project(ctx, "tm_rate_mismatch")) & e["billable"]
    newer[stale & (months == _month_of(change))] = 0
    rate = table[role, currency, newer]
    rate[stale & (months == _month_of(previous_month(ctx.today))) & (mix % 5 == 0)] *= 1.1
    return np.where(e["billable"], np.round(rate, 2), np.nan)


def _billed(ctx: Context, e: dict, status: np.ndarray) -> np.ndarray:
    keys = set()
    for i, plan in enumerate(ctx.plans):
        month = month_start(plan.starts)
        while month <= ctx.today:
            if tm_month_invoiced(plan, month, ctx.today):
                keys.add(i * 100_000 + _month_of(month))
            month = (month + timedelta(days=32)).replace(day=1)
    key = e["project"].astype(np.int64) * 100_000 + _month_index(e["day"])
    return e["billable"] & (status == 2) & np.isin(key, np.array(sorted(keys) or [-1]))


def finish_entries(ctx: Context, e: dict, seed: int) -> dict[str, np.ndarray]:
    """All serving columns, ids assigned in creation order."""
    n = len(e["day"])
    mix = (np.arange(n, dtype=np.uint64) * np.uint64(2654435761) + np.uint64(seed * 7919 + 1)
           ) % np.uint64(2**31)
    mix = mix.astype(np.int64)
    role_of_user = np.array([ROLE_NAMES.index(p.role) for p in ctx.people] + [6], np.int8)
    role = role_of_user[e["user"]]
    status, sub_s, app_s = _statuses(ctx, e, mix)
    created = e["day"].astype(np.int64) * 86400 + 17 * 3600 + mix % 600 + e["part"]
    rejected_s = np.where(status == 3, sub_s + 86400, -1)
    updated = np.maximum.reduce([created, sub_s, app_s, rejected_s])
    manager = np.isin(role, [3, 4])
    task = np.where(e["billable"], np.where(manager & (mix % 4 == 0), 1, 0),
                    np.where(mix % 5 == 0, 3, 2)).astype(np.int8)
    note = np.where(e["billable"], mix % 4, 4 + mix % 3)
    note[mix % 17 == 0] = 7
    cols = {"spent": e["day"].astype(np.int32), "hours": e["hours"], "billable": e["billable"],
            "rate": _rates(ctx, e, role, mix), "role": role, "user": e["user"].astype(np.int16),
            "project": e["project"].astype(np.int16), "task": task, "note": note.astype(np.int8),
            "status": status, "submitted": sub_s, "approved": app_s,
            "billed": _billed(ctx, e, status), "created": created, "updated": updated}
    order = np.lexsort((cols["user"], cols["created"]))
    cols = {k: v[order] for k, v in cols.items()}
    cols["id"] = np.arange(10_000_001, 10_000_001 + n, dtype=np.int64)
    return cols


def anomaly_rows(ctx: Context, next_id: int) -> list[dict]:
    """Seeded bad entries (documented in README): one per data-quality rule."""
    today, now_s = ctx.today, ctx.now_s
    generic = _scenario_project(ctx, "tm_generic")
    ghost_user, ghost_project = len(ctx.people), len(ctx.plans)
    member = ctx.plans[generic].team[0]
    leaver = next(p for p in ctx.people if p.termination and p.termination < today
                  - timedelta(days=5))
    d = today - timedelta(days=9)
    rows = [
        (member.index, d, generic, 0.0, "hours_zero"),
        (member.index, d, generic, 30.0, "hours_30"),
        (member.index, d, ghost_project, 6.0, "unknown_project"),
        (ghost_user, d, generic, 7.5, "unknown_employee"),
        (ghost_user, d - timedelta(days=1), generic, 7.5, "unknown_employee"),
        (member.index, today + timedelta(days=3), generic, 4.0, "future_date"),
        (leaver.index, leaver.termination + timedelta(days=2), 0, 3.0, "after_termination"),
    ]
    out = []
    for n, (user, day, project, hours, reason) in enumerate(rows):
        created = min(at(min(day, today), 17, 55), now_s - 60) + n
        approved = day < today - timedelta(days=2)
        out.append({"id": next_id + n, "user": user, "spent": day_number(day), "hours": hours,
                    "project": project, "reason": reason, "created": created,
                    "status": 2 if approved else 0, "billable": project != 0})
    return out

