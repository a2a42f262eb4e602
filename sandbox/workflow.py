"""When a week's time and expenses get submitted and approved, relative to 'now'.

Submissions happen on the Monday after the week (deadline: Monday 12:00 UTC);
late people submit on Wednesday; approval follows a day and a half later.
"""

from __future__ import annotations

from datetime import date, timedelta

from sandbox.isotime import at

SUBMIT_HOUR = {"on_time": 9, "late": 9 + 48, "draft": 9, "missing": 9}


def approval_times(day: date, habit: str, jitter_s: int, now_s: int) -> tuple:
    """(status, submitted_s or None, approved_s or None) of a record spent on `day`."""
    monday_after = day - timedelta(days=day.weekday()) + timedelta(days=7)
    submitted = at(monday_after, SUBMIT_HOUR.get(habit, 9)) + jitter_s
    approved = submitted + 36 * 3600 + jitter_s
    if submitted > now_s:
        return "draft", None, None
    if approved > now_s:
        return "submitted", submitted, None
    return "approved", submitted, approved
