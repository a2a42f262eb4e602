"""Data anomalies injected into served PSA time entries (fault `anomaly_rate`).

Which record is corrupted, and how, depends only on the fault seed and the
record id, so every read of a record shows the same corruption.
"""

from __future__ import annotations

from datetime import date, timedelta

from sandbox.state import SandboxState
from sandbox.timesheets import CONTRACTOR, GHOST_PROJECT

KINDS = ("hours_zero", "hours_30", "unknown_project", "unknown_email", "future_date",
         "duplicate")


def _kind(state: SandboxState, record: dict) -> str | None:
    draw = state.faults.anomaly_draw(record["id"])
    return None if draw is None else KINDS[draw % len(KINDS)]


def _corrupt(record: dict, kind: str, today: date) -> dict:
    bad = dict(record)
    if kind == "hours_zero":
        bad["hours"] = 0.0
    elif kind == "hours_30":
        bad["hours"] = 30.0
    elif kind == "unknown_project":
        bad["project"] = dict(GHOST_PROJECT)
    elif kind == "unknown_email":
        bad["user"] = dict(CONTRACTOR)
    elif kind == "future_date":
        bad["spent_date"] = (today + timedelta(days=5)).isoformat()
    return bad


def corrupt_page(state: SandboxState, records: list[dict], page: int, per_page: int,
                 since_s: int | None) -> list[dict]:
    if not state.faults.config.anomaly_rate or not records:
        return records
    out, count = [], 0
    if page > 1:  # the previous page's 'duplicate' records are sent again on this page
        previous, _ = state.data.time_entries.page(since_s, (page - 2) * per_page, per_page)
        for record in previous:
            if _kind(state, record) == "duplicate":
                out.append(record)
                count += 1
    for record in records:
        kind = _kind(state, record)
        if kind and kind != "duplicate":
            record = _corrupt(record, kind, state.data.today)
            count += 1
        out.append(record)
    if count:
        state.faults.count_fault("psa", "anomaly", count)
    return out
