"""The transform, step by step (what the DAG's tasks call) or all at once (tests,
end-to-end scenarios). Every step takes a psycopg 3 connection to the warehouse and
runs in its own transaction under an advisory lock, so two transform runs never
interleave and a failed step leaves nothing half-written.

    run_id = start_run(conn, as_of, dag_run_id)
    stage(conn, run_id)                       # raw -> staging (incremental / snapshot)
    gates = check_quality(conn, as_of, run_id, gx_url=..., data_docs_dir=...)
                                              # rules -> ops.exceptions, GX suites,
                                              # raises CriticalGateFailed
    publish(conn, as_of, run_id)              # curated + marts, one transaction
    summary(conn, run_id)

or `run_transform(conn, as_of)` for all of it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from psops.transform import curated, marts, quality
from psops.transform.quality import CriticalGateFailed, GateReport
from psops.transform.rules import REPO_ROOT, load_catalogue

log = logging.getLogger(__name__)

TRANSFORM_LOCK_KEY = 7_314_159_266


def data_docs_dir() -> Path:
    """Where GX Data Docs go: $PSOPS_DATA_DOCS_DIR, else <repo>/build/data_docs."""
    return Path(os.environ.get("PSOPS_DATA_DOCS_DIR") or REPO_ROOT / "build" / "data_docs")


class _Step:
    """`with _Step(conn):` one transaction, UTC session time zone, transform lock."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        self.tx = self.conn.transaction()
        self.tx.__enter__()
        self.conn.execute("SET LOCAL timezone = 'UTC'")
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (TRANSFORM_LOCK_KEY,))
        return self.conn

    def __exit__(self, *exc):
        return self.tx.__exit__(*exc)


def start_run(conn, as_of: date, dag_run_id: str | None = None) -> int:
    with _Step(conn):
        return conn.execute(
            "INSERT INTO ops.transform_runs (as_of, dag_run_id, status) VALUES (%s, %s, 'running') "
            "RETURNING id",
            (as_of, dag_run_id),
        ).fetchone()[0]


def stage(conn, run_id: int) -> str:
    """Raw -> staging. Returns the one-line summary."""
    with _Step(conn):
        written = curated.stage_all(conn)
        counts = curated.staged_counts(conn)
        conn.execute(
            "UPDATE ops.transform_runs SET staged_counts = %s WHERE id = %s",
            (json.dumps(counts), run_id),
        )
    changed = sum(v for k, v in written.items() if k != "employee_resolution_changes")
    return (
        f"staged {changed} new or changed records "
        f"({counts.get('time_entry', 0)} time entries, {counts.get('employee', 0)} employees in staging)"
    )


def _fail_run(conn, run_id: int, message: str) -> None:
    with _Step(conn):
        conn.execute(
            "UPDATE ops.transform_runs SET status = 'failed', finished_at = now(), error = %s "
            "WHERE id = %s",
            (message, run_id),
        )


def check_quality(conn, as_of: date, run_id: int, *, gx_url: str | None = None,
                  docs_dir: Path | None = None) -> GateReport:
    """SQL rules -> ops.exceptions (committed), then GX suites (results kept in
    ops.quality_results, Data Docs built) when gx_url is given, then the critical
    gates: raises CriticalGateFailed (and marks the run failed) when one fails."""
    with _Step(conn):
        report = quality.run_sql_gates(conn, as_of, run_id)
    if gx_url:
        from psops.transform.gx_validation import validate_suites

        validate_suites(conn, gx_url, as_of, run_id, docs_dir or data_docs_dir(), report)
    if report.critical_failures:
        message = "; ".join(report.critical_failures) + " - marts not published"
        _fail_run(conn, run_id, message)
        raise CriticalGateFailed(message)
    return report


def gate_summary(report: GateReport) -> str:
    return (
        f"quality gates passed: {report.open_errors} records quarantined (error), "
        f"{report.open_warnings} warnings open; {report.newly_opened} new and "
        f"{report.newly_resolved} resolved exceptions this run"
    )


def publish(conn, as_of: date, run_id: int) -> dict[str, int]:
    """Curated (staging minus quarantine) and the marts of as_of, in one transaction."""
    with _Step(conn):
        curated.publish_curated(conn)
        mart_counts = marts.build_marts(conn, as_of)
        counts = curated.curated_counts(conn)
        conn.execute(
            "UPDATE ops.transform_runs SET status = 'succeeded', finished_at = now(), "
            "curated_counts = %s WHERE id = %s",
            (json.dumps(counts), run_id),
        )
    return mart_counts


def summary(conn, run_id: int) -> str:
    """One line for finance and on-call: what this run published."""
    row = conn.execute(
        "SELECT as_of, status, error FROM ops.transform_runs WHERE id = %s", (run_id,)
    ).fetchone()
    if row is None:
        return f"transform run {run_id} not found"
    as_of, status, error = row
    if status != "succeeded":
        return f"transform run {run_id} for {as_of}: {status}: {error}"
    kpis = dict(conn.execute(
        "SELECT kpi, value FROM marts.process_kpis WHERE as_of = %s", (as_of,)
    ).fetchall())
    counts = {"ready": 0, "blocked": 0}
    amounts: dict[str, list[str]] = {"ready": [], "blocked": []}
    for status_, currency, count, amount in conn.execute(
        "SELECT status, coalesce(currency, '?'), count(*), sum(amount) "
        "FROM marts.billing_readiness WHERE as_of = %s AND status IN ('ready', 'blocked') "
        "GROUP BY 1, 2 ORDER BY 1, 2", (as_of,)
    ):
        counts[status_] += count
        amounts[status_].append(f"{currency} {amount:,.2f}")
    open_errors, open_warnings = conn.execute(
        "SELECT count(*) FILTER (WHERE severity = 'error'), count(*) FILTER (WHERE severity = 'warning') "
        "FROM ops.exceptions WHERE status = 'open'"
    ).fetchone()

    def pct(v):
        return "n/a" if v is None else f"{float(v):.1%}"

    return (
        f"marts published for {as_of}: {counts['ready']} items ready to bill "
        f"({', '.join(amounts['ready']) or '0'}), {counts['blocked']} blocked "
        f"({', '.join(amounts['blocked']) or '0'}); billable utilization "
        f"{pct(kpis.get('billable_utilization'))}, timesheets on time {pct(kpis.get('timesheet_on_time_rate'))}; "
        f"{open_errors} quarantined records, {open_warnings} open warnings"
    )


@dataclass
class TransformResult:
    run_id: int
    gates: GateReport
    mart_counts: dict[str, int]
    summary: str


def run_transform(conn, as_of: date, *, dag_run_id: str | None = None,
                  gx_url: str | None = None, docs_dir: Path | None = None) -> TransformResult:
    """The whole transform for one as-of date (raises CriticalGateFailed)."""
    load_catalogue()
    run_id = start_run(conn, as_of, dag_run_id)
    try:
        stage(conn, run_id)
        gates = check_quality(conn, as_of, run_id, gx_url=gx_url, docs_dir=docs_dir)
        mart_counts = publish(conn, as_of, run_id)
    except CriticalGateFailed:
        raise
    except Exception as err:
        _fail_run(conn, run_id, f"{type(err).__name__}: {err}")
        raise
    return TransformResult(run_id, gates, mart_counts, summary(conn, run_id))
