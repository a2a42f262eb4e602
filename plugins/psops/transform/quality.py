"""Quality gates, SQL side: every failing record of every rule -> ops.exceptions.

Exception lifecycle (warehouse contract): one OPEN row per (rule_id, entity,
record_key) - enforced by a partial unique index - whose last_seen_at is bumped each
time a run of its rule sees it again; when a later run of the same rule no longer finds
the record, the row becomes `resolved`. A rule resolves only its own rows. A record
with an open `error` exception is quarantined (ops.quarantined_records), i.e. left out
of curated and marts.

Critical gates (stop the marts, publish nothing): an empty critical entity (employees),
or a curated entity that would fall by more than half against the previous successful
transform.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date

from psycopg import sql

from psops.transform.curated import publishable_counts
from psops.transform.rules import Catalogue, Rule, failing_records_sql, load_catalogue

log = logging.getLogger(__name__)


class CriticalGateFailed(RuntimeError):
    """A critical quality gate failed: the marts must not be published."""


@dataclass
class RuleOutcome:
    rule_id: str
    severity: str
    failing: int
    opened: int
    resolved: int


@dataclass
class GateReport:
    rules: list[RuleOutcome] = field(default_factory=list)
    publishable_counts: dict[str, int] = field(default_factory=dict)
    critical_failures: list[str] = field(default_factory=list)

    @property
    def open_errors(self) -> int:
        return sum(r.failing for r in self.rules if r.severity == "error")

    @property
    def open_warnings(self) -> int:
        return sum(r.failing for r in self.rules if r.severity == "warning")

    @property
    def newly_opened(self) -> int:
        return sum(r.opened for r in self.rules)

    @property
    def newly_resolved(self) -> int:
        return sum(r.resolved for r in self.rules)


_APPLY_RULE = """
WITH hits AS ({failing}),
opened AS (
    INSERT INTO ops.exceptions AS e
        (rule_id, severity, source_system, entity, record_key, details,
         first_seen_at, last_seen_at, status, first_as_of, last_as_of, last_transform_run_id)
    SELECT {rule_id}, {severity}, {system}, {entity}, h.record_key, h.details,
           now(), now(), 'open', %(as_of)s, %(as_of)s, %(run_id)s
    FROM hits h
    ON CONFLICT (rule_id, entity, record_key) WHERE status = 'open'
    DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at,
                  details = EXCLUDED.details,
                  severity = EXCLUDED.severity,
                  times_seen = e.times_seen + 1,
                  last_as_of = EXCLUDED.last_as_of,
                  last_transform_run_id = EXCLUDED.last_transform_run_id
    RETURNING (xmax = 0) AS inserted
),
resolved AS (
    UPDATE ops.exceptions e
    SET status = 'resolved', resolved_at = now()
    WHERE e.rule_id = {rule_id} AND e.entity = {entity} AND e.status = 'open'
      AND NOT EXISTS (SELECT 1 FROM hits h WHERE h.record_key = e.record_key)
    RETURNING 1
)
SELECT (SELECT count(*) FROM opened),
       (SELECT count(*) FROM opened WHERE inserted),
       (SELECT count(*) FROM resolved)
"""


def apply_rule(conn, rule: Rule, catalogue: Catalogue, as_of: date, run_id: int | None) -> RuleOutcome:
    entity = catalogue.entity(rule.entity_name)
    statement = sql.SQL(_APPLY_RULE).format(
        failing=sql.SQL(failing_records_sql(rule, catalogue)),
        rule_id=sql.Literal(rule.rule_id),
        severity=sql.Literal(rule.severity),
        system=sql.Literal(entity.source_system),
        entity=sql.Literal(entity.name),
    )
    failing, opened, resolved = conn.execute(
        statement, {"as_of": as_of, "run_id": run_id}
    ).fetchone()
    return RuleOutcome(rule.rule_id, rule.severity, failing, opened, resolved)


def apply_rules(conn, as_of: date, run_id: int | None = None,
                catalogue: Catalogue | None = None) -> list[RuleOutcome]:
    """Run every rule of the catalogue against staging; maintain ops.exceptions."""
    catalogue = catalogue or load_catalogue()
    return [apply_rule(conn, rule, catalogue, as_of, run_id) for rule in catalogue.rules]


def previous_successful_counts(conn) -> tuple[int | None, dict[str, int]]:
    row = conn.execute(
        "SELECT id, curated_counts FROM ops.transform_runs WHERE status = 'succeeded' "
        "ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1"
    ).fetchone()
    return (row[0], row[1] or {}) if row else (None, {})


def critical_failures(conn, counts: dict[str, int], catalogue: Catalogue | None = None) -> list[str]:
    catalogue = catalogue or load_catalogue()
    failures = []
    for entity in catalogue.entities.values():
        if entity.critical and counts.get(entity.name, 0) == 0:
            failures.append(
                f"critical: curated.{entity.table} would be empty "
                f"(no usable {entity.source_system} {entity.stream or entity.raw_table} records)"
            )
    previous_run, previous = previous_successful_counts(conn)
    for name, before in previous.items():
        now = counts.get(name)
        if now is not None and before and now * 2 < before:
            table = catalogue.entity(name).table if name in catalogue.entities else name
            failures.append(
                f"critical: curated.{table} would fall from {before} to {now} rows "
                f"(more than half) against transform run {previous_run}"
            )
    return failures


def run_sql_gates(conn, as_of: date, run_id: int | None = None,
                  catalogue: Catalogue | None = None) -> GateReport:
    """Rules -> exceptions, then the critical gates (reported, not raised)."""
    catalogue = catalogue or load_catalogue()
    report = GateReport(rules=apply_rules(conn, as_of, run_id, catalogue))
    report.publishable_counts = publishable_counts(conn, catalogue)
    report.critical_failures = critical_failures(conn, report.publishable_counts, catalogue)
    return report
