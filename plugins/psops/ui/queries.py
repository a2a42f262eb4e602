"""What the finance pages read from the warehouse, as the read-only role `psops_analyst`.

Every connection the UI opens switches to `psops_analyst` (`SET ROLE`) and to
read-only transactions before its first query, so a page can read only what
an analyst may read (curated, marts, ops.exceptions) and write nothing. Every
value a user chooses (date, region, project, billing type, rule) is passed as
a query parameter, never formatted into SQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import psycopg
from psycopg.rows import dict_row

ANALYST_ROLE = "psops_analyst"
STATEMENT_TIMEOUT_MS = 15_000
UTILIZATION_WEEKS = 12
RESOLVED_RECENTLY_DAYS = 30

# HRIS has an office location per person, not a region; projects and ERP subsidiaries
# use NA / EMEA / APAC. Offices map to those regions; an unknown office is its own group.
OFFICE_REGIONS = {
    "New York": "NA", "Toronto": "NA", "London": "EMEA", "Berlin": "EMEA",
    "Singapore": "APAC", "Sydney": "APAC",
}

# Who acts on each blocking reason, in the words of a finance reader.
REASON_GUIDE = {
    "MILESTONE_NOT_ACCEPTED": ("Milestone not accepted by the client",
                               "Project manager: get the client's acceptance recorded in the PSA"),
    "MISSING_EVIDENCE": ("No evidence document on the milestone",
                         "Project manager: upload the sign-off / evidence to the milestone"),
    "NO_ACTIVE_PROJECT_CODE": ("No active ERP job for the project code",
                               "Finance (ERP admin): create or re-activate the project's job"),
    "NO_BILLING_SCHEDULE": ("No ERP billing schedule line for the milestone",
                            "Finance (billing): add the milestone to the ERP billing schedule"),
    "BILLING_AMOUNT_MISMATCH": ("ERP billing line amount differs from the milestone",
                                "Finance (billing) with the project manager: align the amounts"),
    "PENDING_CHANGE_REQUEST": ("A change request is still pending",
                               "Project manager: get the change request decided"),
    "UNAPPROVED_PURCHASE_ORDER": ("A purchase order is pending approval or rejected",
                                  "Procurement / finance: approve or replace the purchase order"),
    "UNAPPROVED_TIME": ("Billable time not approved (draft or submitted)",
                        "Consultant submits drafts; project manager approves submitted time"),
    "UNAPPROVED_EXPENSES": ("Billable expense not approved (draft or submitted)",
                            "Consultant submits; project manager approves the expense"),
    "MISSING_RECEIPT": ("Approved billable expense without a receipt",
                        "Consultant: attach the receipt to the expense"),
    "RATE_MISMATCH": ("Billed rate differs from the rate card (or no rate card)",
                      "Finance with the project manager: fix the entry's rate or the rate card"),
}


class WarehouseUnavailable(RuntimeError):
    """The warehouse could not be reached or the analyst role could not be taken."""


ConninfoProvider = Callable[[], str]


def airflow_connection_conninfo(conn_id: str = "warehouse") -> str:
    """psycopg conninfo of the Airflow connection `warehouse` (env, secrets backend or DB)."""
    from airflow.sdk import BaseHook
    from psycopg.conninfo import make_conninfo

    conn = BaseHook.get_connection(conn_id)
    params = {
        "host": conn.host, "port": conn.port or 5432, "user": conn.login,
        "password": conn.password, "dbname": conn.schema or "postgres", "connect_timeout": 5,
        "application_name": "psops_ui",
    }
    sslmode = (conn.extra_dejson or {}).get("sslmode")
    if sslmode:
        params["sslmode"] = sslmode
    return make_conninfo(**{k: v for k, v in params.items() if v not in (None, "")})


@contextmanager
def analyst_connection(conninfo: str) -> Iterator[psycopg.Connection]:
    """A warehouse connection that runs every statement as psops_analyst, read-only."""
    try:
        conn = psycopg.connect(conninfo, autocommit=True, row_factory=dict_row)
    except psycopg.OperationalError as err:
        raise WarehouseUnavailable(
            f"cannot connect to the warehouse (Airflow connection 'warehouse'): {err}".strip()
        ) from None
    try:
        try:
            conn.execute(f"SET ROLE {ANALYST_ROLE}")
        except psycopg.errors.InsufficientPrivilege:
            raise WarehouseUnavailable(
                f"the 'warehouse' connection's user may not SET ROLE {ANALYST_ROLE}; "
                f"GRANT {ANALYST_ROLE} TO that user"
            ) from None
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(STATEMENT_TIMEOUT_MS),))
        conn.execute("SET timezone = 'UTC'")
        yield conn
    finally:
        conn.close()


# --------------------------------------------------------------------------
# As-of dates
# --------------------------------------------------------------------------


def as_of_dates(conn) -> list[date]:
    """Every as-of date the billing mart has, newest first."""
    rows = conn.execute(
        "SELECT DISTINCT as_of FROM marts.billing_readiness ORDER BY as_of DESC"
    ).fetchall()
    return [r["as_of"] for r in rows]


def marts_as_of(conn, chosen: date | None, table: str = "billing_readiness") -> date | None:
    """The latest as-of date on or before `chosen` (the latest of all when None)."""
    tables = {"billing_readiness": "marts.billing_readiness",
              "utilization_weekly": "marts.utilization_weekly"}
    row = conn.execute(
        f"SELECT max(as_of) AS as_of FROM {tables[table]} "
        "WHERE %(chosen)s::date IS NULL OR as_of <= %(chosen)s::date",
        {"chosen": chosen},
    ).fetchone()
    return row["as_of"] if row else None


# --------------------------------------------------------------------------
# Billing readiness
# --------------------------------------------------------------------------


@dataclass
class BillingFilters:
    region: str | None = None
    project: str | None = None
    billing_type: str | None = None

    def params(self) -> dict:
        return {"region": self.region or None, "project": self.project or None,
                "billing_type": self.billing_type or None}


@dataclass
class BillingView:
    as_of: date
    totals: dict[str, dict[str, Decimal]]          # status -> currency -> amount
    counts: dict[str, int]                          # status -> items
    ready_items: list[dict]
    blocked_items: list[dict]                       # each with "blockers": [...]
    reasons: list[dict]                             # grouped by blocking reason
    owners: list[dict]                              # who must act, grouped by person
    options: dict[str, list[str]]                   # filter choices
    kpis: dict[str, dict] = field(default_factory=dict)


_BILLING_ITEMS = """
SELECT br.project_code, br.project_id, br.billing_type, br.item_type, br.item_id,
       br.amount, br.currency, br.status, br.blocking_reasons,
       p.name AS project_name, p.region, p.project_manager_email,
       m.name AS milestone_name, m.due_on, m.status AS milestone_status, m.accepted_at
FROM marts.billing_readiness br
LEFT JOIN curated.projects p ON p.project_id = br.project_id
LEFT JOIN curated.milestones m ON br.item_type = 'milestone' AND m.milestone_id = br.item_id
WHERE br.as_of = %(as_of)s
  AND (%(region)s::text IS NULL OR p.region = %(region)s)
  AND (%(project)s::text IS NULL OR br.project_code = %(project)s)
  AND (%(billing_type)s::text IS NULL OR br.billing_type = %(billing_type)s)
ORDER BY br.project_code, br.item_type, br.item_id
"""

_BLOCKERS = """
SELECT b.project_id, b.item_type, b.item_id, b.reason, b.blocking_entity,
       b.blocking_record_id, b.detail,
       coalesce(te.user_email, x.user_email) AS person_email,
       coalesce(te.status, x.status) AS record_status,
       coalesce(te.spent_date, x.spent_date) AS spent_date,
       te.hours, x.total_cost
FROM marts.billing_readiness_blockers b
JOIN curated.projects p ON p.project_id = b.project_id
LEFT JOIN curated.time_entries te
  ON b.blocking_entity = 'time_entry' AND te.time_entry_id = b.blocking_record_id
LEFT JOIN curated.expenses x
  ON b.blocking_entity = 'expense' AND x.expense_id = b.blocking_record_id
WHERE b.as_of = %(as_of)s
  AND (%(region)s::text IS NULL OR p.region = %(region)s)
  AND (%(project)s::text IS NULL OR b.project_code = %(project)s)
  AND (%(billing_type)s::text IS NULL OR p.billing_type = %(billing_type)s)
ORDER BY b.project_code, b.item_id, b.reason, b.blocking_entity, b.blocking_record_id
"""


def _who_must_act(blocker: dict, pm_email: str | None) -> str:
    """The person to chase for one blocking record."""
    reason = blocker["reason"]
    person = blocker.get("person_email")
    person = person.lower() if person else person
    pm_email = pm_email.lower() if pm_email else pm_email
    if reason in ("UNAPPROVED_TIME", "UNAPPROVED_EXPENSES"):
        # A draft waits on its author; a submitted record waits on the approver (the PM).
        if blocker.get("record_status") == "draft" and person:
            return person
        return pm_email or "project manager (none recorded)"
    if reason == "MISSING_RECEIPT" and person:
        return person
    if reason in ("NO_ACTIVE_PROJECT_CODE", "NO_BILLING_SCHEDULE", "UNAPPROVED_PURCHASE_ORDER"):
        return "finance / ERP"
    return pm_email or "project manager (none recorded)"


def billing_view(conn, as_of: date, filters: BillingFilters) -> BillingView:
    params = {"as_of": as_of, **filters.params()}
    items = conn.execute(_BILLING_ITEMS, params).fetchall()
    blockers = conn.execute(_BLOCKERS, params).fetchall()

    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        totals[item["status"]][item["currency"] or "?"] += item["amount"]
        counts[item["status"]] += 1
        item["label"] = (item["milestone_name"] or f"milestone {item['item_id']}"
                         if item["item_type"] == "milestone" else f"time & expenses {item['item_id']}")

    by_item: dict[tuple, list[dict]] = defaultdict(list)
    for b in blockers:
        by_item[(b["project_id"], b["item_type"], b["item_id"])].append(b)

    blocked = [i for i in items if i["status"] == "blocked"]
    reason_groups: dict[str, dict] = {}
    owner_groups: dict[str, dict] = {}
    for item in blocked:
        item["blockers"] = by_item.get((item["project_id"], item["item_type"], item["item_id"]), [])
        for b in item["blockers"]:
            b["who"] = _who_must_act(b, item["project_manager_email"])
        for reason in item["blocking_reasons"]:
            title, action = REASON_GUIDE.get(reason, (reason, "see the blocking records"))
            group = reason_groups.setdefault(reason, {
                "reason": reason, "title": title, "action": action, "items": 0,
                "amounts": defaultdict(Decimal), "records": 0, "projects": set()})
            group["items"] += 1
            group["amounts"][item["currency"] or "?"] += item["amount"]
            group["records"] += sum(1 for b in item["blockers"] if b["reason"] == reason)
            group["projects"].add(item["project_code"])
        for who in sorted({b["who"] for b in item["blockers"]}):
            owner = owner_groups.setdefault(who, {
                "who": who, "items": set(), "records": 0, "reasons": set(),
                "amounts": defaultdict(Decimal)})
            key = (item["project_id"], item["item_type"], item["item_id"])
            if key not in owner["items"]:
                owner["items"].add(key)
                owner["amounts"][item["currency"] or "?"] += item["amount"]
            mine = [b for b in item["blockers"] if b["who"] == who]
            owner["records"] += len(mine)
            owner["reasons"].update(b["reason"] for b in mine)

    reasons = sorted(reason_groups.values(), key=lambda g: (-g["items"], g["reason"]))
    for g in reasons:
        g["projects"] = sorted(g["projects"])
    owners = sorted(owner_groups.values(), key=lambda o: (-len(o["items"]), o["who"]))
    for o in owners:
        o["items"] = len(o["items"])
        o["reasons"] = sorted(o["reasons"])

    return BillingView(
        as_of=as_of,
        totals={k: dict(v) for k, v in totals.items()},
        counts=dict(counts),
        ready_items=[i for i in items if i["status"] == "ready"],
        blocked_items=sorted(blocked, key=lambda i: (-i["amount"], i["project_code"])),
        reasons=reasons,
        owners=owners,
        options=billing_filter_options(conn, as_of),
    )


def billing_filter_options(conn, as_of: date) -> dict[str, list[str]]:
    rows = conn.execute(
        """SELECT DISTINCT p.region, br.project_code, br.billing_type, p.name
           FROM marts.billing_readiness br
           LEFT JOIN curated.projects p ON p.project_id = br.project_id
           WHERE br.as_of = %(as_of)s""",
        {"as_of": as_of},
    ).fetchall()
    return {
        "region": sorted({r["region"] for r in rows if r["region"]}),
        "project": sorted({r["project_code"] for r in rows}),
        "billing_type": sorted({r["billing_type"] for r in rows}),
        "project_names": {r["project_code"]: r["name"] for r in rows},
    }


def process_kpis(conn, as_of: date) -> dict[str, dict]:
    rows = conn.execute(
        "SELECT kpi, value, numerator, denominator FROM marts.process_kpis WHERE as_of = %(as_of)s",
        {"as_of": as_of},
    ).fetchall()
    return {r["kpi"]: r for r in rows}


# --------------------------------------------------------------------------
# Exceptions
# --------------------------------------------------------------------------


@dataclass
class ExceptionsView:
    open_by_rule: list[dict]
    open_rows: list[dict]
    resolved_by_rule: list[dict]
    resolved_rows: list[dict]
    totals: dict[str, int]
    rules: list[str]
    meanings: dict[str, str] = field(default_factory=dict)


def exceptions_view(conn, rule: str | None = None, severity: str | None = None,
                    limit: int = 500) -> ExceptionsView:
    params = {"rule": rule or None, "severity": severity or None, "limit": limit,
              "days": RESOLVED_RECENTLY_DAYS}
    open_by_rule = conn.execute(
        """SELECT rule_id, severity, source_system, entity, count(*) AS records,
                  min(first_seen_at) AS first_seen, max(last_seen_at) AS last_seen
           FROM ops.exceptions
           WHERE status = 'open'
             AND (%(rule)s::text IS NULL OR rule_id = %(rule)s)
             AND (%(severity)s::text IS NULL OR severity = %(severity)s)
           GROUP BY rule_id, severity, source_system, entity
           ORDER BY CASE severity WHEN 'error' THEN 0 ELSE 1 END, count(*) DESC, rule_id""",
        params,
    ).fetchall()
    open_rows = conn.execute(
        """SELECT rule_id, severity, source_system, entity, record_key, details,
                  first_seen_at, last_seen_at, times_seen, last_as_of
           FROM ops.exceptions
           WHERE status = 'open'
             AND (%(rule)s::text IS NULL OR rule_id = %(rule)s)
             AND (%(severity)s::text IS NULL OR severity = %(severity)s)
           ORDER BY CASE severity WHEN 'error' THEN 0 ELSE 1 END, rule_id, record_key
           LIMIT %(limit)s""",
        params,
    ).fetchall()
    resolved_rows = conn.execute(
        """SELECT rule_id, severity, source_system, entity, record_key, details,
                  first_seen_at, last_seen_at, resolved_at
           FROM ops.exceptions
           WHERE status = 'resolved'
             AND coalesce(resolved_at, last_seen_at) >= now() - make_interval(days => %(days)s)
             AND (%(rule)s::text IS NULL OR rule_id = %(rule)s)
             AND (%(severity)s::text IS NULL OR severity = %(severity)s)
           ORDER BY coalesce(resolved_at, last_seen_at) DESC, rule_id, record_key
           LIMIT %(limit)s""",
        params,
    ).fetchall()
    resolved_by_rule: dict[tuple, dict] = {}
    for r in resolved_rows:
        g = resolved_by_rule.setdefault((r["rule_id"], r["severity"]), {
            "rule_id": r["rule_id"], "severity": r["severity"], "records": 0,
            "last_resolved": None})
        g["records"] += 1
        when = r["resolved_at"] or r["last_seen_at"]
        g["last_resolved"] = max(filter(None, [g["last_resolved"], when]))
    rules = [r["rule_id"] for r in conn.execute(
        "SELECT DISTINCT rule_id FROM ops.exceptions ORDER BY rule_id").fetchall()]
    totals = {
        "open_errors": sum(g["records"] for g in open_by_rule if g["severity"] == "error"),
        "open_warnings": sum(g["records"] for g in open_by_rule if g["severity"] == "warning"),
        "resolved_recently": len(resolved_rows),
    }
    return ExceptionsView(open_by_rule, open_rows, list(resolved_by_rule.values()),
                          resolved_rows, totals, rules, rule_meanings())


def rule_meanings() -> dict[str, str]:
    """rule_id -> what it checks, from the rule catalogue (include/quality_rules.yaml)."""
    try:
        from psops.transform.rules import load_catalogue

        return {rule.rule_id: rule.description for rule in load_catalogue().rules}
    except Exception:  # noqa: BLE001 - the page works without the descriptions
        return {}


# --------------------------------------------------------------------------
# Utilization and timesheet compliance
# --------------------------------------------------------------------------


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


# A person's region: their office's region (offices and regions passed as parameters).
REGION_SQL = (
    "coalesce((SELECT r.region FROM unnest(%(offices)s::text[], %(office_regions)s::text[])"
    " AS r(office, region) WHERE r.office = e.location), e.location, 'unknown')"
)


def _region_params() -> dict:
    return {"offices": list(OFFICE_REGIONS), "office_regions": list(OFFICE_REGIONS.values())}


def utilization_view(conn, as_of: date, region: str | None = None) -> UtilizationView:
    weeks = last_complete_weeks(as_of)
    region_sql = REGION_SQL
    params = {"as_of": as_of, "first": weeks[0], "last": weeks[-1], "region": region or None,
              **_region_params()}
    rows = conn.execute(
        f"""WITH people AS (
                SELECT e.employee_id, e.display_name, e.email, e.job_title, e.department,
                       e.location, {region_sql} AS region
                FROM curated.employees e)
            SELECT u.employee_id, coalesce(p.display_name, u.email, u.employee_id) AS name,
                   p.job_title, p.location, coalesce(p.region, 'unknown') AS region,
                   u.week_start, u.capacity_hours, u.billable_hours, u.nonbillable_hours,
                   u.utilization, u.target_utilization
            FROM marts.utilization_weekly u
            LEFT JOIN people p ON p.employee_id = u.employee_id
            WHERE u.as_of = %(as_of)s AND u.week_start BETWEEN %(first)s AND %(last)s
              AND (%(region)s::text IS NULL OR coalesce(p.region, 'unknown') = %(region)s)
            ORDER BY name, u.week_start""",
        params,
    ).fetchall()
    people: dict[str, dict] = {}
    regions: dict[str, dict] = {}
    for r in rows:
        person = people.setdefault(r["employee_id"], {
            "employee_id": r["employee_id"], "name": r["name"], "job_title": r["job_title"],
            "location": r["location"], "region": r["region"], "target": r["target_utilization"],
            "capacity": Decimal(0), "billable": Decimal(0), "nonbillable": Decimal(0),
            "weekly": {}})
        person["capacity"] += r["capacity_hours"]
        person["billable"] += r["billable_hours"]
        person["nonbillable"] += r["nonbillable_hours"]
        person["weekly"][r["week_start"]] = r["utilization"]
        reg = regions.setdefault(r["region"], {
            "region": r["region"], "people": set(),
            "weekly": {w: {"capacity": Decimal(0), "billable": Decimal(0),
                           "target_capacity": Decimal(0), "target_hours": Decimal(0)}
                       for w in weeks}})
        reg["people"].add(r["employee_id"])
        wk = reg["weekly"][r["week_start"]]
        wk["capacity"] += r["capacity_hours"]
        wk["billable"] += r["billable_hours"]
        if r["target_utilization"] is not None:
            wk["target_capacity"] += r["capacity_hours"]
            wk["target_hours"] += r["capacity_hours"] * r["target_utilization"]
    for person in people.values():
        person["utilization"] = (person["billable"] / person["capacity"]
                                 if person["capacity"] else None)
        person["gap"] = (person["utilization"] - person["target"]
                         if person["utilization"] is not None and person["target"] is not None
                         else None)
        person["under_target"] = person["gap"] is not None and person["gap"] < 0
    region_list = []
    for reg in sorted(regions.values(), key=lambda g: g["region"]):
        cap = sum(w["capacity"] for w in reg["weekly"].values())
        bill = sum(w["billable"] for w in reg["weekly"].values())
        tcap = sum(w["target_capacity"] for w in reg["weekly"].values())
        thours = sum(w["target_hours"] for w in reg["weekly"].values())
        series = []
        for w in weeks:
            wk = reg["weekly"][w]
            series.append({
                "week": w,
                "utilization": wk["billable"] / wk["capacity"] if wk["capacity"] else None,
                "target": wk["target_hours"] / wk["target_capacity"] if wk["target_capacity"] else None,
            })
        members = [p for p in people.values() if p["region"] == reg["region"]]
        region_list.append({
            "region": reg["region"], "people": len(reg["people"]),
            "capacity": cap, "billable": bill,
            "utilization": bill / cap if cap else None,
            "target": thours / tcap if tcap else None,
            "under_target": sum(1 for p in members if p["under_target"]),
            "series": series,
        })
    compliance_weeks, compliance_people = timesheet_compliance(conn, as_of, weeks, region)
    options = {"region": sorted({r["region"] for r in conn.execute(
        f"SELECT DISTINCT {region_sql} AS region FROM curated.employees e",
        _region_params()).fetchall()})}
    return UtilizationView(as_of, weeks,
                           sorted(people.values(), key=lambda p: (p["gap"] is None,
                                                                  p["gap"] or 0, p["name"])),
                           region_list, compliance_weeks, compliance_people, options)


def timesheet_compliance(conn, as_of: date, weeks: list[date], region: str | None):
    region_sql = REGION_SQL
    rows = conn.execute(
        f"""SELECT t.employee_id, coalesce(e.display_name, t.employee_id) AS name,
                   {region_sql} AS region, e.email, t.week_start, t.status, t.hours_logged
            FROM marts.timesheet_compliance t
            LEFT JOIN curated.employees e ON e.employee_id = t.employee_id
            WHERE t.as_of = %(as_of)s AND t.week_start BETWEEN %(first)s AND %(last)s
              AND (%(region)s::text IS NULL OR {region_sql} = %(region)s)
            ORDER BY t.week_start, name""",
        {"as_of": as_of, "first": weeks[0], "last": weeks[-1], "region": region or None,
         **_region_params()},
    ).fetchall()
    per_week = {w: defaultdict(int) for w in weeks}
    per_person: dict[str, dict] = {}
    for r in rows:
        per_week[r["week_start"]][r["status"]] += 1
        if r["status"] in ("missing", "late"):
            p = per_person.setdefault(r["employee_id"], {
                "name": r["name"], "email": r["email"], "region": r["region"],
                "missing": [], "late": []})
            p[r["status"]].append(r["week_start"])
    weeks_out = []
    for w in weeks:
        c = per_week[w]
        due = c["on_time"] + c["late"] + c["missing"]
        weeks_out.append({"week": w, "on_time": c["on_time"], "late": c["late"],
                          "missing": c["missing"], "open": c["open"],
                          "rate": c["on_time"] / due if due else None})
    people = sorted(per_person.values(),
                    key=lambda p: (-len(p["missing"]), -len(p["late"]), p["name"]))
    return weeks_out, people


def can_read(conn, relation: str) -> bool:
    """Whether the current role (psops_analyst) may SELECT from `relation`."""
    row = conn.execute(
        "SELECT to_regclass(%(rel)s) IS NOT NULL "
        "AND has_table_privilege(%(rel)s, 'SELECT') AS ok", {"rel": relation}
    ).fetchone()
    return bool(row and row["ok"])


def transform_run_ids(conn, as_of: date) -> list[str]:
    """Airflow run ids of the succeeded transform runs for as_of, newest first, when the
    analyst may read ops.transform_runs (else empty: Airflow's own metadata is used)."""
    if not can_read(conn, "ops.transform_runs"):
        return []
    rows = conn.execute(
        """SELECT dag_run_id FROM ops.transform_runs
           WHERE as_of = %(as_of)s AND status = 'succeeded' AND dag_run_id IS NOT NULL
           ORDER BY finished_at DESC NULLS LAST""",
        {"as_of": as_of},
    ).fetchall()
    return [r["dag_run_id"] for r in rows]
