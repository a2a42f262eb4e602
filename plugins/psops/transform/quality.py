"""Quality gates, SQL side: every failing record of every rule -> ops.exceptions.

Each rule's failing records go to the exception queue (psops.exception_queue owns its
lifecycle). A record with an open `error` exception is quarantined
(ops.quarantined_records), i.e. left out of curated and marts.

Critical gates (stop the marts, publish nothing): an empty critical entity (employees),
or a curated entity that would fall by more than half against the previous successful
transform. They are decided in the transaction that syncs the exception rows, before it
commits: a failing gate raises and the rollback keeps none of those rows (an empty HRIS
snapshot must not open an exception for every time entry).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date

from psycopg.rows import dict_row

from psops import exception_queue
from psops.exception_queue import ExceptionRule
from psops.transform.curated import publishable_counts
from psops.transform.rules import Catalogue, Rule, failing_records_sql, load_catalogue

log = logging.getLogger(__name__)


class CriticalGateFailed(RuntimeError):
    """A critical quality gate failed: the marts must not be published, and the exception
    rows of the same check must not be committed."""


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


def apply_rule(conn, rule: Rule, catalogue: Catalogue, as_of: date, run_id: int | None) -> RuleOutcome:
    """Sync the rule's rows of the exception queue with the records failing it now."""
    entity = catalogue.entity(rule.entity_name)
    outcome = exception_queue.sync_rule(
        conn, ExceptionRule(rule.rule_id, rule.severity, entity.source_system, entity.name),
        failing_records_sql(rule, catalogue), as_of,
        checked_by=f"psops_transform (transform run {run_id})", run_id=run_id)
    return RuleOutcome(rule.rule_id, rule.severity, outcome.failing, outcome.opened,
                       outcome.resolved)


def apply_rules(conn, as_of: date, run_id: int | None = None,
                catalogue: Catalogue | None = None) -> list[RuleOutcome]:
    """Run every rule of the catalogue against staging; maintain ops.exceptions."""
    catalogue = catalogue or load_catalogue()
    return [apply_rule(conn, rule, catalogue, as_of, run_id) for rule in catalogue.rules]


def previous_successful_counts(conn) -> tuple[int | None, dict[str, int]]:
    with conn.cursor(row_factory=dict_row) as cur:
        run = cur.execute(
            "SELECT id, curated_counts FROM ops.transform_runs WHERE status = 'succeeded' "
            "ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1").fetchone()
    return (run["id"], run["curated_counts"] or {}) if run else (None, {})


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
    """Rules -> exceptions and the critical gates, in the caller's transaction (the gates
    count curated-to-be, i.e. staging minus the quarantine the rules leave). Raises
    CriticalGateFailed when a gate fails: the caller's rollback then drops this check's
    exception rows."""
    catalogue = catalogue or load_catalogue()
    report = GateReport(rules=apply_rules(conn, as_of, run_id, catalogue))
    report.publishable_counts = publishable_counts(conn, catalogue)
    report.critical_failures = critical_failures(conn, report.publishable_counts, catalogue)
    if report.critical_failures:
        raise CriticalGateFailed("; ".join(report.critical_failures) + " - marts not published")
    return report
