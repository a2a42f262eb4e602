"""The billing page: what can be invoiced, what blocks the rest and who must act.

Totals, the amounts held per blocking reason (with its title and next action) and the
person to chase for each blocking record come from the warehouse (migration 0008:
marts.billing_totals_by_project, marts.billing_blocked_by_reason_and_project,
marts.billing_blocker_owners); this module only filters and arranges them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from psycopg import sql


@dataclass
class BillingFilters:
    region: str | None = None
    project: str | None = None
    billing_type: str | None = None

    def params(self) -> dict:
        return {"region": self.region or None, "project": self.project or None,
                "billing_type": self.billing_type or None}


@dataclass
class ReasonGroup:
    reason: str
    title: str
    action: str
    items: int = 0
    amounts: dict[str, Decimal] = field(default_factory=dict)   # currency -> amount held
    records: int = 0
    projects: list[str] = field(default_factory=list)


@dataclass
class OwnerGroup:
    who: str
    items: int = 0
    records: int = 0
    reasons: list[str] = field(default_factory=list)
    amounts: dict[str, Decimal] = field(default_factory=dict)   # currency -> amount held


@dataclass
class BillingView:
    as_of: date
    totals: dict[str, dict[str, Decimal]]          # status -> currency -> amount
    counts: dict[str, int]                          # status -> items
    ready_items: list[dict]
    blocked_items: list[dict]                       # each with "blockers": [...]
    reasons: list[ReasonGroup]
    owners: list[OwnerGroup]
    options: dict[str, list[str]]                   # filter choices
    kpis: dict[str, dict] = field(default_factory=dict)


def _filters(region: sql.Identifier, project: sql.Identifier,
             billing_type: sql.Identifier) -> sql.Composed:
    """The page's filters on these columns (the values are the query's parameters)."""
    return sql.SQL(
        "(%(region)s::text IS NULL OR {region} = %(region)s)"
        " AND (%(project)s::text IS NULL OR {project} = %(project)s)"
        " AND (%(billing_type)s::text IS NULL OR {billing_type} = %(billing_type)s)"
    ).format(region=region, project=project, billing_type=billing_type)


# The per-project views have the filtered columns themselves.
_VIEW_FILTERS = _filters(sql.Identifier("region"), sql.Identifier("project_code"),
                         sql.Identifier("billing_type"))

_ITEMS = sql.SQL("""
SELECT br.project_code, br.project_id, br.billing_type, br.item_type, br.item_id,
       br.amount, br.currency, br.status, br.blocking_reasons,
       p.name AS project_name, p.region, p.project_manager_email,
       m.name AS milestone_name, m.due_on, m.status AS milestone_status, m.accepted_at
FROM marts.billing_readiness br
LEFT JOIN curated.projects p ON p.project_id = br.project_id
LEFT JOIN curated.milestones m ON br.item_type = 'milestone' AND m.milestone_id = br.item_id
WHERE br.as_of = %(as_of)s AND {filters}
ORDER BY br.project_code, br.item_type, br.item_id
""").format(filters=_filters(sql.Identifier("p", "region"), sql.Identifier("br", "project_code"),
                             sql.Identifier("br", "billing_type")))

_BLOCKERS = sql.SQL("""
SELECT o.project_id, o.item_type, o.item_id, o.reason, o.blocking_entity,
       o.blocking_record_id, o.detail, o.spent_date, o.hours, o.total_cost,
       o.who_must_act AS who
FROM marts.billing_blocker_owners o
JOIN curated.projects p ON p.project_id = o.project_id
WHERE o.as_of = %(as_of)s AND {filters}
ORDER BY o.project_code, o.item_id, o.reason, o.blocking_entity, o.blocking_record_id
""").format(filters=_filters(sql.Identifier("p", "region"), sql.Identifier("o", "project_code"),
                             sql.Identifier("p", "billing_type")))

_TOTALS = sql.SQL("""
SELECT status, currency, sum(items)::bigint AS items, sum(amount) AS amount
FROM marts.billing_totals_by_project
WHERE as_of = %(as_of)s AND {filters}
GROUP BY status, currency
""").format(filters=_VIEW_FILTERS)

_REASONS = sql.SQL("""
SELECT reason, title, action, currency, sum(items)::bigint AS items, sum(amount) AS amount,
       array_agg(DISTINCT project_code) AS projects
FROM marts.billing_blocked_by_reason_and_project
WHERE as_of = %(as_of)s AND {filters}
GROUP BY reason, title, action, currency
""").format(filters=_VIEW_FILTERS)


def billing_view(conn, as_of: date, filters: BillingFilters) -> BillingView:
    params = {"as_of": as_of, **filters.params()}
    items = conn.execute(_ITEMS, params).fetchall()
    for item in items:
        item["label"] = _item_label(item)
    blocked = [item for item in items if item["status"] == "blocked"]
    _attach_blockers(blocked, conn.execute(_BLOCKERS, params).fetchall())
    totals, counts = _totals(conn, params)
    return BillingView(
        as_of=as_of,
        totals=totals,
        counts=counts,
        ready_items=[item for item in items if item["status"] == "ready"],
        blocked_items=sorted(blocked, key=lambda i: (-i["amount"], i["project_code"])),
        reasons=_reason_groups(conn, params, blocked),
        owners=_owner_groups(blocked),
        options=billing_filter_options(conn, as_of),
    )


def _item_label(item: dict) -> str:
    if item["item_type"] == "milestone":
        return item["milestone_name"] or f"milestone {item['item_id']}"
    return f"time & expenses {item['item_id']}"


def _attach_blockers(blocked_items: list[dict], blockers: list[dict]) -> None:
    """Each blocked item gets its blocking records (with who must act) as "blockers"."""
    by_item: dict[tuple, list[dict]] = defaultdict(list)
    for blocker in blockers:
        by_item[(blocker["project_id"], blocker["item_type"], blocker["item_id"])].append(blocker)
    for item in blocked_items:
        item["blockers"] = by_item.get((item["project_id"], item["item_type"], item["item_id"]), [])


def _totals(conn, params: dict) -> tuple[dict[str, dict[str, Decimal]], dict[str, int]]:
    """Amount per status and currency, and items per status."""
    totals: dict[str, dict[str, Decimal]] = defaultdict(dict)
    counts: dict[str, int] = defaultdict(int)
    for row in conn.execute(_TOTALS, params):
        totals[row["status"]][row["currency"]] = row["amount"]
        counts[row["status"]] += row["items"]
    return dict(totals), dict(counts)


def _reason_groups(conn, params: dict, blocked_items: list[dict]) -> list[ReasonGroup]:
    """Per blocking reason: items, amount held per currency, records to fix, projects."""
    records = Counter(b["reason"] for item in blocked_items for b in item["blockers"])
    groups: dict[str, ReasonGroup] = {}
    for row in conn.execute(_REASONS, params):
        group = groups.setdefault(row["reason"], ReasonGroup(
            row["reason"], row["title"], row["action"], records=records[row["reason"]]))
        group.items += row["items"]
        group.amounts[row["currency"]] = row["amount"]
        group.projects = sorted({*group.projects, *row["projects"]})
    return sorted(groups.values(), key=lambda g: (-g.items, g.reason))


def _owner_groups(blocked_items: list[dict]) -> list[OwnerGroup]:
    """Per person (or team) to chase: the blocked items and records waiting on them."""
    groups: dict[str, OwnerGroup] = {}
    for item in blocked_items:
        currency = item["currency"] or "?"
        for who in sorted({b["who"] for b in item["blockers"]}):
            mine = [b for b in item["blockers"] if b["who"] == who]
            group = groups.setdefault(who, OwnerGroup(who))
            group.items += 1
            group.records += len(mine)
            group.reasons = sorted({*group.reasons, *(b["reason"] for b in mine)})
            group.amounts[currency] = group.amounts.get(currency, Decimal(0)) + item["amount"]
    return sorted(groups.values(), key=lambda g: (-g.items, g.who))


def billing_filter_options(conn, as_of: date) -> dict[str, list[str]]:
    rows = conn.execute(
        """SELECT DISTINCT p.region, br.project_code, br.billing_type, p.name
           FROM marts.billing_readiness br
           LEFT JOIN curated.projects p ON p.project_id = br.project_id
           WHERE br.as_of = %(as_of)s""",
        {"as_of": as_of},
    ).fetchall()
    return {
        "region": sorted({row["region"] for row in rows if row["region"]}),
        "project": sorted({row["project_code"] for row in rows}),
        "billing_type": sorted({row["billing_type"] for row in rows}),
        "project_names": {row["project_code"]: row["name"] for row in rows},
    }
