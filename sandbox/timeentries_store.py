"""Columnar store of PSA time entries, served page by page without copies.

The generated entries live in numpy columns sorted by (updated_at, id). A
changed entry is marked dead in the columns and kept as a JSON-ready dict in
a small 'tail' that sorts after every column row (the sandbox clock only moves
forward), so a page is a slice of live rows plus a slice of the tail and an
`updated_since` query is a binary search.
"""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np

from sandbox.isotime import date_array, iso_s, iso_s_array, parse_time
from sandbox.timesheets import NOTES, ROLE_NAMES, STATUSES, TASKS

COLUMNS = ("id", "spent", "hours", "billable", "rate", "role", "user", "project", "task",
           "note", "status", "submitted", "approved", "billed", "created", "updated")


class TimeEntryStore:
    def __init__(self, cols: dict[str, np.ndarray], users: list[dict],
                 projects: list[dict]) -> None:
        order = np.lexsort((cols["id"], cols["updated"]))
        self._cols = {name: np.ascontiguousarray(cols[name][order]) for name in COLUMNS}
        self._users, self._projects = users, projects
        self._live = np.ones(len(order), bool)
        self._by_id = np.argsort(self._cols["id"], kind="stable")
        self._sorted_ids = self._cols["id"][self._by_id]
        self._tail: list[dict] = []
        self._tail_keys: list[tuple] = []
        self._tail_by_id: dict[int, dict] = {}
        self._live_idx = np.arange(len(order))
        self._live_updated = self._cols["updated"]
        self._dirty = False

    # --- reading -------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._live.sum()) + len(self._tail)

    def _refresh(self) -> None:
        if self._dirty:
            self._live_idx = np.flatnonzero(self._live)
            self._live_updated = self._cols["updated"][self._live_idx]
            self._dirty = False

    def page(self, since_s: int | None, offset: int, limit: int) -> tuple[list[dict], int]:
        """Records with updated_at >= since_s from position `offset`; and the total."""
        self._refresh()
        base0 = 0 if since_s is None else int(np.searchsorted(self._live_updated, since_s))
        tail0 = 0 if since_s is None else bisect.bisect_left(self._tail_keys, (iso_s(since_s),))
        n_base = len(self._live_idx) - base0
        total = n_base + len(self._tail) - tail0
        rows = self._live_idx[base0 + min(offset, n_base): base0 + min(offset + limit, n_base)]
        records = self._render(rows)
        if offset + limit > n_base:
            first = tail0 + max(0, offset - n_base)
            records += self._tail[first: first + limit - len(records)]
        return records, total

    def _render(self, rows: np.ndarray) -> list[dict]:
        if len(rows) == 0:
            return []
        c = {name: self._cols[name][rows] for name in COLUMNS}
        spent = date_array(c["spent"])
        created, updated = iso_s_array(c["created"]), iso_s_array(c["updated"])
        submitted = _optional_times(c["submitted"])
        approved = _optional_times(c["approved"])
        rates = [None if r != r else r for r in c["rate"].tolist()]
        users, projects = self._users, self._projects
        out = []
        for i, (rid, hours, bill, role, user, project, task, note, status, billed) in enumerate(
                zip(c["id"].tolist(), c["hours"].tolist(), c["billable"].tolist(),
                    c["role"].tolist(), c["user"].tolist(), c["project"].tolist(),
                    c["task"].tolist(), c["note"].tolist(), c["status"].tolist(),
                    c["billed"].tolist(), strict=True)):
            out.append({
                "id": rid, "spent_date": spent[i], "hours": hours, "billable": bill,
                "billable_rate": rates[i], "role": ROLE_NAMES[role], "user": users[user],
                "project": projects[project], "task": TASKS[task], "notes": NOTES[note],
                "status": STATUSES[status], "submitted_at": submitted[i],
                "approved_at": approved[i], "is_billed": billed, "created_at": created[i],
                "updated_at": updated[i],
            })
        return out

    def _position(self, entry_id: int) -> int | None:
        i = int(np.searchsorted(self._sorted_ids, entry_id))
        if i < len(self._sorted_ids) and self._sorted_ids[i] == entry_id:
            return int(self._by_id[i])
        return None

    def get(self, entry_id: int) -> dict | None:
        if entry_id in self._tail_by_id:
            return self._tail_by_id[entry_id]
        pos = self._position(entry_id)
        if pos is None or not self._live[pos]:
            return None
        return self._render(np.array([pos]))[0]

    def ids(self) -> np.ndarray:
        """Every current id (for tests and touch)."""
        self._refresh()
        tail = np.array(sorted(self._tail_by_id), dtype=np.int64)
        return np.concatenate([self._cols["id"][self._live_idx], tail])

    def versions(self) -> dict[int, int]:
        """Every current id and its updated_at in epoch seconds."""
        self._refresh()
        base = dict(zip(self._cols["id"][self._live_idx].tolist(),
                        self._live_updated.tolist(), strict=True))
        base.update({entry_id: parse_time(record["updated_at"])
                     for entry_id, record in self._tail_by_id.items()})
        return base

    def max_updated_s(self) -> int:
        base = int(self._cols["updated"].max()) if len(self._live) else 0
        tail = parse_time(self._tail[-1]["updated_at"]) if self._tail else 0
        return max(base, tail)

    # --- writing -------------------------------------------------------------
    def replace(self, record: dict[str, Any]) -> None:
        """Store a changed entry (its updated_at must be the newest time)."""
        entry_id = record["id"]
        old = self._tail_by_id.pop(entry_id, None)
        if old is not None:
            index = bisect.bisect_left(self._tail_keys, (old["updated_at"], entry_id))
            del self._tail[index], self._tail_keys[index]
        else:
            pos = self._position(entry_id)
            if pos is not None:
                self._live[pos] = False
                self._dirty = True
        key = (record["updated_at"], entry_id)
        index = bisect.bisect_right(self._tail_keys, key)
        self._tail.insert(index, record)
        self._tail_keys.insert(index, key)
        self._tail_by_id[entry_id] = record


def _optional_times(values: np.ndarray) -> list[str | None]:
    texts = iso_s_array(np.maximum(values, 0))
    return [t if v >= 0 else None for t, v in zip(texts, values.tolist(), strict=True)]
