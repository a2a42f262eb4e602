"""Sandbox-only data changes and truth for the soak (benchmarks/soak.py).

`mutate` applies one cycle's changes: new records (a closed-won deal ready to be set
up, PSA milestones and expenses, HRIS time off), updated records (across systems),
deleted records (PSA expenses, HRIS time off) and a few bad ones (hours out of range,
a NUL in a name, an amount beyond any ledger). `truth` says what the APIs serve now:
every incremental stream's record versions, every snapshot stream's ids, and how many
projects, jobs and billing lines exist per set-up key.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sandbox.isotime import iso_ms, iso_s
from sandbox.state import SandboxState
from sandbox.touch import touch

SOAK_PREFIX = "Soak"
# (system, stream) -> where the sandbox keeps the records and their update time.
INCREMENTAL = {
    ("crm", "deals"): ("crm", "deals"), ("crm", "companies"): ("crm", "companies"),
    ("psa", "projects"): ("psa", "projects"), ("psa", "milestones"): ("psa", "milestones"),
    ("psa", "assignments"): ("psa", "assignments"), ("psa", "expenses"): ("psa", "expenses"),
    ("psa", "change_requests"): ("psa", "change_requests"),
    ("erp", "customers"): ("erp", "customer"), ("erp", "jobs"): ("erp", "job"),
    ("erp", "billing_milestones"): ("erp", "billingMilestone"),
    ("erp", "rate_cards"): ("erp", "customrecord_rate_card"),
    ("erp", "invoices"): ("erp", "invoice"), ("erp", "purchase_orders"): ("erp", "purchaseOrder"),
}
UPDATABLE = (("psa", "time_entries"), ("psa", "milestones"), ("psa", "assignments"),
             ("crm", "deals"), ("crm", "companies"), ("erp", "invoice"),
             ("erp", "purchaseOrder"))
# The ledger's amounts are numeric(14,2): this one does not fit.
HUGE_AMOUNT = 1e13


def epoch_ms(text: str | None) -> int | None:
    """Milliseconds of an ISO time as the APIs write it (`...Z`, optional fraction)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(moment.astimezone(UTC).timestamp() * 1000)


def _updated_text(system: str, record: dict) -> str:
    if system == "crm":
        return record["properties"]["hs_lastmodifieddate"]
    return record["updated_at"] if system == "psa" else record["lastModifiedDate"]


# -- changes -----------------------------------------------------------------------

def _new_deal(state: SandboxState, rng: random.Random) -> str | None:
    """A copy of the latest closed-won, signed deal: a new set-up candidate."""
    table = state.data.crm["deals"]
    templates = [d for d in table.all() if d["properties"].get("dealstage") == "closedwon"
                 and d["properties"].get("contract_signed_date")
                 and float(d["properties"].get("amount") or 0) > 0
                 and not str(d["properties"].get("dealname")).startswith(SOAK_PREFIX)]
    if not templates:
        return None
    template = max(templates, key=lambda d: d["properties"]["closedate"])
    deal_id = str(table.max_id() + 1)
    now_ms = state.clock.tick() * 1000
    props = {**template["properties"], "dealname": f"{SOAK_PREFIX} deal {deal_id}",
             "psa_project_id": None, "hs_object_id": deal_id,
             "sow_reference": f"SOW-{deal_id}", "amount": f"{rng.randint(2, 20) * 5000:.2f}",
             "hs_lastmodifieddate": iso_ms(now_ms)}
    table.upsert({**template, "id": deal_id, "properties": props,
                  "updatedAt": iso_ms(now_ms)})
    return deal_id


def _new_psa(state: SandboxState, resource: str, template: dict, changes: dict) -> int:
    table = state.data.psa[resource]
    record_id = table.max_id() + 1
    now = iso_s(state.clock.tick())
    table.upsert({**copy.deepcopy(template), **changes, "id": record_id,
                  "created_at": now, "updated_at": now})
    return record_id


def _new_milestone(state: SandboxState, rng: random.Random) -> int | None:
    """An accepted milestone with evidence on a project that has one: a new billing line."""
    accepted = [m for m in state.data.psa["milestones"].all()
                if m["status"] == "accepted" and m.get("evidence")]
    if not accepted:
        return None
    template = rng.choice(accepted)
    return _new_psa(state, "milestones", template, {
        "name": f"{SOAK_PREFIX} milestone", "amount": float(rng.randint(1, 8) * 100)})


def _new_expense(state: SandboxState, rng: random.Random) -> int | None:
    expenses = state.data.psa["expenses"].all()
    if not expenses:
        return None
    return _new_psa(state, "expenses", rng.choice(expenses),
                    {"total_cost": round(rng.uniform(10, 900), 2)})


def _new_time_off(state: SandboxState, rng: random.Random) -> str | None:
    if not state.data.time_off:
        return None
    template = copy.deepcopy(rng.choice(state.data.time_off))
    template["id"] = str(max(int(r["id"]) for r in state.data.time_off) + 1)
    state.data.time_off.append(template)
    return template["id"]


def _delete(state: SandboxState, rng: random.Random) -> list[str]:
    """Remove one PSA expense (the API stops serving it) and one HRIS time-off request."""
    deleted = []
    expenses = state.data.psa["expenses"].all()
    if expenses:
        victim = rng.choice(expenses)
        state.data.psa["expenses"].remove(victim["id"])
        deleted.append(f"psa/expenses/{victim['id']}")
    if state.data.time_off:
        victim = state.data.time_off.pop(rng.randrange(len(state.data.time_off)))
        deleted.append(f"hris/time_off/{victim['id']}")
    return deleted


def _update(state: SandboxState, rng: random.Random, count: int) -> list[str]:
    updated = []
    for _ in range(count):
        system, resource = rng.choice(UPDATABLE)
        if resource == "time_entries":
            ids = state.data.time_entries.ids().tolist()
        else:
            ids = [r["id"] for r in getattr(state.data, system)[resource].all()]
        chosen = rng.choice(ids)
        touch(state, system, resource, ids=[chosen])
        updated.append(f"{system}/{resource}/{chosen}")
    return updated


def _bad(state: SandboxState, rng: random.Random, count: int) -> list[str]:
    """Records a pipeline must quarantine or reject, never stop on."""
    kinds = [
        ("psa", "time_entries", lambda: {"hours": rng.choice([30.0, -4.0])}),
        ("crm", "companies", lambda: {"name": "Null\u0000Byte Ltd"}),
        ("psa", "milestones", lambda: {"amount": HUGE_AMOUNT}),
    ]
    bad, first = [], rng.randrange(len(kinds))
    for n in range(count):
        system, resource, changes = kinds[(first + n) % len(kinds)]
        if resource == "time_entries":
            ids = state.data.time_entries.ids().tolist()
        else:
            ids = [r["id"] for r in getattr(state.data, system)[resource].all()]
        chosen = rng.choice(ids)
        touch(state, system, resource, ids=[chosen], changes=changes())
        bad.append(f"{system}/{resource}/{chosen}")
    return bad


def mutate(state: SandboxState, seed: int, new: int = 1, updated: int = 5,
           deleted: int = 1, bad: int = 1) -> dict[str, list]:
    """One cycle's changes, chosen by `seed`; what changed, as `system/resource/id`."""
    rng = random.Random(seed)
    with state.lock:
        made = []
        for _ in range(new):
            made += [f"crm/deals/{_new_deal(state, rng)}",
                     f"psa/milestones/{_new_milestone(state, rng)}",
                     f"psa/expenses/{_new_expense(state, rng)}",
                     f"hris/time_off/{_new_time_off(state, rng)}"]
        gone = [item for _ in range(deleted) for item in _delete(state, rng)]
        return {"new": made, "updated": _update(state, rng, updated), "deleted": gone,
                "bad": _bad(state, rng, bad)}


# -- truth ---------------------------------------------------------------------------

def _time_entry_versions(state: SandboxState) -> dict[str, int]:
    store = state.data.time_entries
    return {str(entry_id): updated_s * 1000
            for entry_id, updated_s in store.versions().items()}


def _per_key(records: list[dict], key) -> dict[str, int]:
    counts = Counter(str(key(r)) for r in records if key(r) not in (None, ""))
    return dict(counts)


def truth(state: SandboxState) -> dict[str, Any]:
    """What the sandbox serves now: {"versions": {"system/stream": {id: updated ms}},
    "snapshots": {"system/stream": [ids]}, "per_key": {...counts per set-up key}}."""
    with state.lock:
        versions = {f"{system}/{stream}": {
            str(r["id"]): epoch_ms(_updated_text(system, r))
            for r in getattr(state.data, where[0])[where[1]].all()}
            for (system, stream), where in INCREMENTAL.items()}
        versions["psa/time_entries"] = _time_entry_versions(state)
        snapshots = {"hris/employees": [str(e["id"]) for e in state.data.employees]}
        per_key = {
            "psa_projects_per_deal": _per_key(state.data.psa["projects"].all(),
                                              lambda r: r.get("crm_deal_id")),
            "erp_jobs_per_project": _per_key(state.data.erp["job"].all(),
                                             lambda r: r.get("externalId")),
            "erp_jobs_per_code": _per_key(state.data.erp["job"].all(),
                                          lambda r: r.get("entityId")),
            "billing_lines_per_milestone": _per_key(state.data.erp["billingMilestone"].all(),
                                                    lambda r: r.get("externalId")),
        }
    return {"versions": versions, "snapshots": snapshots, "per_key": per_key}
