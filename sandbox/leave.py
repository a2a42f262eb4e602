"""HRIS time-off requests (BambooHR style) and the leave days they imply."""

from __future__ import annotations

import random
from datetime import date, timedelta

from sandbox.people import Person

LEAVE_TYPES = {"vacation": {"id": "78", "name": "Vacation"},
               "sick": {"id": "79", "name": "Sick"},
               "personal": {"id": "80", "name": "Personal"}}


def _working(day: date, holidays: set[date]) -> bool:
    return day.weekday() < 5 and day not in holidays


def _request(number: int, person: Person, kind: str, first: date, last: date, unit: str,
             per_day: float, status: str, holidays: set[date]) -> dict:
    dates: dict[str, str] = {}
    day = first
    while day <= last:
        dates[day.isoformat()] = f"{per_day:g}" if _working(day, holidays) else "0"
        day += timedelta(days=1)
    total = sum(float(v) for v in dates.values())
    changed = first - timedelta(days=14)
    return {
        "id": str(number), "employeeId": person.hris_id, "name": person.name,
        "status": {"lastChanged": changed.isoformat(), "lastChangedByUserId": "2369",
                   "status": status},
        "start": first.isoformat(), "end": last.isoformat(),
        "created": (changed - timedelta(days=2)).isoformat(),
        "type": dict(LEAVE_TYPES[kind]),
        "amount": {"unit": unit, "amount": f"{total:g}"},
        "notes": {}, "dates": dates,
    }


def _next_working(day: date, holidays: set[date]) -> date:
    while not _working(day, holidays):
        day += timedelta(days=1)
    return day


def make_time_off(rng: random.Random, people: list[Person], holiday_days: set[date],
                  start: date, today: date) -> list[dict]:
    """Requests for everyone; approved ones also fill `person.leave_days`."""
    requests: list[dict] = []
    number = 1200
    for person in people:
        first_day = max(person.hire, start - timedelta(days=30))
        last_day = min(person.termination or date.max, today + timedelta(days=90))
        span = (last_day - first_day).days
        if span < 20:
            continue
        plan = [("vacation", "days", rng.randint(3, 9)), ("vacation", "days", rng.randint(2, 5)),
                ("sick", "days", rng.randint(1, 2)), ("personal", "hours", 1),
                ("vacation", "days", 1)]
        for n, (kind, unit, length) in enumerate(plan):
            begin = _next_working(first_day + timedelta(days=rng.randint(0, span - 12)),
                                  holiday_days)
            end = begin + timedelta(days=length - 1 + 2 * (length > 3))
            per_day = 4.0 if unit == "hours" else (0.5 if n == 4 else 1.0)
            status = "approved" if rng.random() < 0.85 or kind == "sick" else rng.choice(
                ("requested", "denied", "canceled"))
            number += 1
            requests.append(_request(number, person, kind, begin, end, unit, per_day, status,
                                     holiday_days))
            if status == "approved":
                _record_leave(person, requests[-1], unit)
    return requests


def _record_leave(person: Person, request: dict, unit: str) -> None:
    daily = (person.std_hours or 0) / 5
    for day_text, amount_text in request["dates"].items():
        amount = float(amount_text)
        if amount <= 0:
            continue
        fraction = amount if unit == "days" else (amount / daily if daily else 1.0)
        day = date.fromisoformat(day_text)
        person.leave_days[day] = min(1.0, person.leave_days.get(day, 0.0) + fraction)
