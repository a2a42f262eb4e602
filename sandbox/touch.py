"""Sandbox-only data changes for tests: bump the update time of N records."""

from __future__ import annotations

import numpy as np

from sandbox.isotime import iso_ms, iso_s
from sandbox.state import SandboxState

RESOURCES = {
    "crm": ("companies", "deals"),
    "psa": ("projects", "milestones", "assignments", "time_entries", "expenses",
            "change_requests"),
    "erp": ("customer", "job", "billingMilestone", "customrecord_rate_card", "invoice",
            "purchaseOrder"),
}


def _pick(all_ids: list, count: int, ids: list | None) -> list:
    """The given ids, or `count` ids spread evenly over the current order."""
    if ids:
        return list(ids)
    if count <= 0 or not all_ids:
        return []
    positions = np.linspace(0, len(all_ids) - 1, min(count, len(all_ids))).round()
    return [all_ids[int(p)] for p in positions]


def touch(state: SandboxState, system: str, resource: str, count: int = 1,
          ids: list | None = None, changes: dict | None = None) -> dict:
    """Give the chosen records a new update time (and optional field changes)."""
    if resource not in RESOURCES.get(system, ()):
        raise ValueError(f"unknown resource {system}/{resource}")
    with state.lock:
        now = state.clock.tick()
        if system == "psa" and resource == "time_entries":
            store = state.data.time_entries
            chosen = _pick(store.ids().tolist(), count, ids)
            for entry_id in chosen:
                record = store.get(int(entry_id))
                if record is not None:
                    store.replace({**record, **(changes or {}), "updated_at": iso_s(now)})
            return {"touched": [int(i) for i in chosen], "updated_at": iso_s(now)}
        table = getattr(state.data, system)[resource]
        chosen = _pick([r["id"] for r in table.all()], count, ids)
        for record_id in chosen:
            record = table.get(int(record_id))
            if record is not None:
                table.upsert(_bumped(system, record, now, changes or {}))
        return {"touched": chosen, "updated_at": iso_s(now)}


def _bumped(system: str, record: dict, now_s: int, changes: dict) -> dict:
    if system == "crm":
        props = {**record["properties"], **{k: None if v is None else str(v)
                                            for k, v in changes.items()}}
        props["hs_lastmodifieddate"] = iso_ms(now_s * 1000)
        return {**record, "properties": props, "updatedAt": iso_ms(now_s * 1000)}
    if system == "psa":
        return {**record, **changes, "updated_at": iso_s(now_s)}
    return {**record, **changes, "lastModifiedDate": iso_s(now_s)}
