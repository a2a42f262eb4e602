"""The exceptions page: the data-quality queue (ops.exceptions), open and recently
resolved, and the writes to the source systems that were given up (ops.dead_writes)."""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

RESOLVED_RECENTLY_DAYS = 30

# The page's filters (None: every rule, every severity).
_RULE_AND_SEVERITY = sql.SQL("""(%(rule)s::text IS NULL OR rule_id = %(rule)s)
  AND (%(severity)s::text IS NULL OR severity = %(severity)s)""")

_OPEN_BY_RULE = sql.SQL("""
SELECT rule_id, severity, source_system, entity, count(*) AS records,
       min(first_seen_at) AS first_seen, max(last_seen_at) AS last_seen
FROM ops.exceptions
WHERE status = 'open' AND {filters}
GROUP BY rule_id, severity, source_system, entity
ORDER BY CASE severity WHEN 'error' THEN 0 ELSE 1 END, count(*) DESC, rule_id
""").format(filters=_RULE_AND_SEVERITY)

_OPEN_ROWS = sql.SQL("""
SELECT rule_id, severity, source_system, entity, record_key, details,
       first_seen_at, last_seen_at, times_seen, last_as_of
FROM ops.exceptions
WHERE status = 'open' AND {filters}
ORDER BY CASE severity WHEN 'error' THEN 0 ELSE 1 END, rule_id, record_key
LIMIT %(limit)s
""").format(filters=_RULE_AND_SEVERITY)

_RESOLVED_ROWS = sql.SQL("""
SELECT rule_id, severity, source_system, entity, record_key, details,
       first_seen_at, last_seen_at, resolved_at, resolved_by
FROM ops.exceptions
WHERE status = 'resolved'
  AND coalesce(resolved_at, last_seen_at) >= now() - make_interval(days => %(days)s)
  AND {filters}
ORDER BY coalesce(resolved_at, last_seen_at) DESC, rule_id, record_key
LIMIT %(limit)s
""").format(filters=_RULE_AND_SEVERITY)


_DEAD_WRITES = """
SELECT idempotency_key, system, project_code, description, worth, currency, attempts,
       reason, given_up_at
FROM ops.dead_writes
ORDER BY given_up_at DESC, idempotency_key
"""


@dataclass
class ExceptionsView:
    open_by_rule: list[dict]
    open_rows: list[dict]
    resolved_by_rule: list[dict]
    resolved_rows: list[dict]
    totals: dict[str, int]
    rules: list[str]
    meanings: dict[str, str] = field(default_factory=dict)
    dead_writes: list[dict] = field(default_factory=list)


def exceptions_view(conn, rule: str | None = None, severity: str | None = None,
                    limit: int = 500) -> ExceptionsView:
    params = {"rule": rule or None, "severity": severity or None, "limit": limit,
              "days": RESOLVED_RECENTLY_DAYS}
    open_by_rule = conn.execute(_OPEN_BY_RULE, params).fetchall()
    open_rows = conn.execute(_OPEN_ROWS, params).fetchall()
    resolved_rows = conn.execute(_RESOLVED_ROWS, params).fetchall()
    rules = [row["rule_id"] for row in conn.execute(
        "SELECT DISTINCT rule_id FROM ops.exceptions ORDER BY rule_id").fetchall()]
    totals = {
        "open_errors": sum(g["records"] for g in open_by_rule if g["severity"] == "error"),
        "open_warnings": sum(g["records"] for g in open_by_rule if g["severity"] == "warning"),
        "resolved_recently": len(resolved_rows),
    }
    return ExceptionsView(open_by_rule, open_rows, _resolved_by_rule(resolved_rows),
                          resolved_rows, totals, rules, rule_meanings(),
                          conn.execute(_DEAD_WRITES).fetchall())


def _resolved_by_rule(resolved_rows: list[dict]) -> list[dict]:
    groups: dict[tuple, dict] = {}
    for row in resolved_rows:
        group = groups.setdefault((row["rule_id"], row["severity"]), {
            "rule_id": row["rule_id"], "severity": row["severity"], "records": 0,
            "last_resolved": None})
        group["records"] += 1
        when = row["resolved_at"] or row["last_seen_at"]
        group["last_resolved"] = max(filter(None, [group["last_resolved"], when]))
    return list(groups.values())


def rule_meanings() -> dict[str, str]:
    """rule_id -> what it checks, from the rule catalogue (include/quality_rules.yaml)."""
    try:
        from psops.transform.rules import load_catalogue

        return {rule.rule_id: rule.description for rule in load_catalogue().rules}
    except Exception:  # noqa: BLE001 - the page works without the descriptions
        return {}
