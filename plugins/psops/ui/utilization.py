"""The utilization page: 12 complete weeks of utilization against target, by person and
by region, and timesheet compliance. A person's region is marts.employee_regions'."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

UTILIZATION_WEEKS = 12

_PERSON_WEEKS = """
SELECT u.employee_id, coalesce(e.display_name, u.email, u.employee_id) AS name,
       e.job_title, e.location, coalesce(r.region, 'unknown') AS region,
       u.week_start, u.capacity_hours, u.billable_hours, u.nonbillable_hours,
       u.utilization, u.target_utilization
FROM marts.utilization_weekly u
LEFT JOIN curated.employees e ON e.employee_id = u.employee_id
LEFT JOIN marts.employee_regions r ON r.employee_id = u.employee_id
WHERE u.as_of = %(as_of)s AND u.week_start BETWEEN %(first)s AND %(last)s
  AND (%(region)s::text IS NULL OR coalesce(r.region, 'unknown') = %(region)s)
ORDER BY name, u.week_start
"""

_TIMESHEET_WEEKS = """
SELECT t.employee_id, coalesce(e.display_name, t.employee_id) AS name,
       coalesce(r.region, 'unknown') AS region, e.email, t.week_start, t.status,
       t.hours_logged
FROM marts.timesheet_compliance t
LEFT JOIN curated.employees e ON e.employee_id = t.employee_id
LEFT JOIN marts.employee_regions r ON r.employee_id = t.employee_id
WHERE t.as_of = %(as_of)s AND t.week_start BETWEEN %(first)s AND %(last)s
  AND (%(region)s::text IS NULL OR coalesce(r.region, 'unknown') = %(region)s)
ORDER BY t.week_start, name
"""


@dataclass
class UtilizationView:
    as_of: date
    weeks: list[date]
    people: list[dict]            # one per person: totals, target, weekly series
    regions: list[dict]           # one per region: weekly series and totals
    compliance_weeks: list[dict]  # per week: counts by status
    compliance_people: list[dict] # people with missing/late weeks
    options: dict[str, list[str]]

    @property
    def period_end(self) -> date:
        return self.weeks[-1] + timedelta(days=6)


def last_complete_weeks(as_of: date, n: int = UTILIZATION_WEEKS) -> list[date]:
    """Mondays of the n complete ISO weeks (Sunday before the as-of date) before as_of."""
    this_monday = as_of - timedelta(days=as_of.weekday())
    return [this_monday - timedelta(weeks=k) for k in range(n, 0, -1)]


def utilization_view(conn, as_of: date, region: str | None = None) -> UtilizationView:
    weeks = last_complete_weeks(as_of)
    params = {"as_of": as_of, "first": weeks[0], "last": weeks[-1], "region": region or None}
    people: dict[str, dict] = {}
    regions: dict[str, dict] = {}
    for row in conn.execute(_PERSON_WEEKS, params):
        _add_person_week(people, row)
        _add_region_week(regions, row, weeks)
    for person in people.values():
        _set_utilization(person)
    region_list = [_region_summary(reg, weeks, people.values())
                   for reg in sorted(regions.values(), key=lambda g: g["region"])]
    compliance_weeks, compliance_people = timesheet_compliance(conn, params, weeks)
    options = {"region": sorted(row["region"] for row in conn.execute(
        "SELECT DISTINCT region FROM marts.employee_regions"))}
    ordered = sorted(people.values(), key=lambda p: (p["gap"] is None, p["gap"] or 0, p["name"]))
    return UtilizationView(as_of, weeks, ordered, region_list, compliance_weeks,
                           compliance_people, options)


def _add_person_week(people: dict[str, dict], row: dict) -> None:
    person = people.setdefault(row["employee_id"], {
        "employee_id": row["employee_id"], "name": row["name"], "job_title": row["job_title"],
        "location": row["location"], "region": row["region"],
        "target": row["target_utilization"],
        "capacity": Decimal(0), "billable": Decimal(0), "nonbillable": Decimal(0),
        "weekly": {}})
    person["capacity"] += row["capacity_hours"]
    person["billable"] += row["billable_hours"]
    person["nonbillable"] += row["nonbillable_hours"]
    person["weekly"][row["week_start"]] = row["utilization"]


def _add_region_week(regions: dict[str, dict], row: dict, weeks: list[date]) -> None:
    reg = regions.setdefault(row["region"], {
        "region": row["region"], "people": set(),
        "weekly": {w: {"capacity": Decimal(0), "billable": Decimal(0),
                       "target_capacity": Decimal(0), "target_hours": Decimal(0)}
                   for w in weeks}})
    reg["people"].add(row["employee_id"])
    week = reg["weekly"][row["week_start"]]
    week["capacity"] += row["capacity_hours"]
    week["billable"] += row["billable_hours"]
    if row["target_utilization"] is not None:
        week["target_capacity"] += row["capacity_hours"]
        week["target_hours"] += row["capacity_hours"] * row["target_utilization"]


def _set_utilization(person: dict) -> None:
    person["utilization"] = (person["billable"] / person["capacity"]
                             if person["capacity"] else None)
    person["gap"] = (person["utilization"] - person["target"]
                     if person["utilization"] is not None and person["target"] is not None
                     else None)
    person["under_target"] = person["gap"] is not None and person["gap"] < 0


def _ratio(numerator, denominator):
    return numerator / denominator if denominator else None


def _region_summary(reg: dict, weeks: list[date], people) -> dict:
    """A region's utilization and capacity-weighted target, overall and week by week."""
    weekly = reg["weekly"].values()
    capacity = sum(w["capacity"] for w in weekly)
    billable = sum(w["billable"] for w in weekly)
    series = [{"week": w,
               "utilization": _ratio(reg["weekly"][w]["billable"], reg["weekly"][w]["capacity"]),
               "target": _ratio(reg["weekly"][w]["target_hours"],
                                reg["weekly"][w]["target_capacity"])}
              for w in weeks]
    members = [p for p in people if p["region"] == reg["region"]]
    return {
        "region": reg["region"], "people": len(reg["people"]),
        "capacity": capacity, "billable": billable,
        "utilization": _ratio(billable, capacity),
        "target": _ratio(sum(w["target_hours"] for w in weekly),
                         sum(w["target_capacity"] for w in weekly)),
        "under_target": sum(1 for p in members if p["under_target"]),
        "series": series,
    }


def timesheet_compliance(conn, params: dict, weeks: list[date]):
    """Per week: timesheets on time, late, missing, open; the people with missing or
    late weeks (most missing first)."""
    per_week = {w: defaultdict(int) for w in weeks}
    per_person: dict[str, dict] = {}
    for row in conn.execute(_TIMESHEET_WEEKS, params):
        per_week[row["week_start"]][row["status"]] += 1
        if row["status"] in ("missing", "late"):
            person = per_person.setdefault(row["employee_id"], {
                "name": row["name"], "email": row["email"], "region": row["region"],
                "missing": [], "late": []})
            person[row["status"]].append(row["week_start"])
    weeks_out = []
    for w in weeks:
        counts = per_week[w]
        due = counts["on_time"] + counts["late"] + counts["missing"]
        weeks_out.append({"week": w, "on_time": counts["on_time"], "late": counts["late"],
                          "missing": counts["missing"], "open": counts["open"],
                          "rate": _ratio(counts["on_time"], due)})
    people = sorted(per_person.values(),
                    key=lambda p: (-len(p["missing"]), -len(p["late"]), p["name"]))
    return weeks_out, people
