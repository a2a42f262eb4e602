"""The transform's steps: plain functions of their arguments that open the warehouse
themselves (psops.db). The psops_transform DAG's tasks call them one by one;
`runner.run_transform` (tests, benchmarks) calls them in order.

    staged = stage(as_of, dag_run_id)          # a new run in ops.transform_runs; raw -> staging
    report = check_quality(as_of, staged.run_id, with_gx=True)
                                               # rules -> ops.exceptions, GX suites;
                                               # raises CriticalGateFailed
    counts = publish(as_of, staged.run_id)     # curated + marts, one transaction
    line = summary(staged.run_id)

Each step runs in its own transaction under the transform lock, so two runs never
interleave and a failed step leaves nothing half-written. A step that fails marks its
run failed in ops.transform_runs, however it was called; a retried step that then
succeeds goes on with the same run, which `publish` marks succeeded.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from psycopg.rows import dict_row

from psops import run_lock
from psops.connectors.raw_loader import ensure_raw_table
from psops.db import warehouse_connection
from psops.formatting import amounts_by_currency
from psops.settings import DATA_DOCS_DIR, TRANSFORM_LOCK_KEY
from psops.transform import curated, marts, quality
from psops.transform.quality import CriticalGateFailed, GateReport
from psops.transform.rules import load_catalogue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Staged:
    run_id: int
    summary: str


@contextlib.contextmanager
def _locked_transaction() -> Iterator:
    """A warehouse connection in one transaction (committed on success), UTC session
    time zone, holding the transform lock (waiting at most PSOPS_RUN_LOCK_TIMEOUT_SECONDS:
    run_lock.RunLockTimeout)."""
    with warehouse_connection() as conn:
        conn.execute("SET LOCAL timezone = 'UTC'")
        run_lock.take(conn, "SELECT pg_advisory_xact_lock(%s)", (TRANSFORM_LOCK_KEY,),
                      "transform")
        yield conn


@contextlib.contextmanager
def _failure_marks_run(run_id: int) -> Iterator[None]:
    """Whatever fails inside marks the run failed (best effort), then goes on failing."""
    try:
        yield
    except BaseException as err:
        message = str(err) if isinstance(err, CriticalGateFailed) \
            else f"{type(err).__name__}: {err}"
        try:
            with _locked_transaction() as conn:
                conn.execute("UPDATE ops.transform_runs SET status = 'failed', "
                             "finished_at = now(), error = %s WHERE id = %s", (message, run_id))
        except Exception:  # noqa: BLE001 - the step's own error is what matters
            log.warning("could not mark transform run %s failed", run_id, exc_info=True)
        raise


def stage(as_of: date, dag_run_id: str | None = None) -> Staged:
    """Start a run for as_of (marking runs left `running` by a process that ended
    abandoned: psops_transform runs one DAG run at a time, and this one holds the lock),
    then raw -> staging (incremental / snapshot)."""
    load_catalogue()  # a broken rule catalogue fails before a run is recorded
    with _locked_transaction() as conn:
        (run_id,) = conn.execute(
            "INSERT INTO ops.transform_runs (as_of, dag_run_id, status) "
            "VALUES (%s, %s, 'running') RETURNING id", (as_of, dag_run_id)).fetchone()
        conn.execute("UPDATE ops.transform_runs SET status = 'abandoned', finished_at = now(), "
                     "error = %s WHERE status = 'running' AND id <> %s",
                     (run_lock.abandon_message(run_id), run_id))
    with _failure_marks_run(run_id), _locked_transaction() as conn:
        for entity in load_catalogue().entities.values():  # version-time rules read raw
            ensure_raw_table(conn, entity.raw_table)
        written = curated.stage_all(conn)
        counts = curated.row_counts(conn, "staging")
        conn.execute("UPDATE ops.transform_runs SET staged_counts = %s WHERE id = %s",
                     (json.dumps(counts), run_id))
    changed = sum(rows for name, rows in written.items()
                  if name != "employee_resolution_changes")
    line = (f"staged {changed} new or changed records ({counts.get('time_entry', 0)} time "
            f"entries, {counts.get('employee', 0)} employees in staging)")
    log.info("%s", line)
    return Staged(run_id, line)


def check_quality(as_of: date, run_id: int, *, with_gx: bool = False,
                  docs_dir: Path | None = None) -> GateReport:
    """SQL rules -> ops.exceptions and the critical gates in one transaction: a failing
    gate raises CriticalGateFailed and commits no exception row. `with_gx`, the GX suites
    run meanwhile in a thread (Data Docs built in `docs_dir`, default PSOPS_DATA_DOCS_DIR,
    for every check, one the gates stop included), joined before that transaction
    commits; their results go to ops.quality_results only for a check that passed the
    gates, like the exceptions."""
    docs_dir = docs_dir or DATA_DOCS_DIR.path()
    with _failure_marks_run(run_id):
        with _locked_transaction() as conn:
            gx_run = _start_gx(conn, as_of, docs_dir) if with_gx else None
            try:
                report = quality.run_sql_gates(conn, as_of, run_id)
            finally:
                if gx_run:  # never left running; it read staging before this commits
                    gx_run.wait()
        if gx_run:  # the exceptions are committed; a GX failure fails the step now
            from psops.transform.gx_validation import record_results

            with warehouse_connection() as conn:
                record_results(conn, as_of, run_id, gx_run.rows(), gx_run.scopes, report)
            log.info("Data Docs: %s", docs_dir)
    log.info("%s", gate_summary(report))
    return report


def _start_gx(conn, as_of: date, docs_dir: Path):
    from psops.transform.gx_validation import ValidationInBackground

    return ValidationInBackground(conn, as_of, docs_dir)


def gate_summary(report: GateReport) -> str:
    return (
        f"quality gates passed: {report.open_errors} records quarantined (error), "
        f"{report.open_warnings} warnings open; {report.newly_opened} new and "
        f"{report.newly_resolved} resolved exceptions this run"
    )


def publish(as_of: date, run_id: int, *, full: bool = False) -> dict[str, int]:
    """Curated (staging minus quarantine: the keys changed since the last publish, every
    row with `full`) and the marts of as_of, in one transaction; the run succeeded.
    Returns the rows of each mart table for as_of."""
    with _failure_marks_run(run_id), _locked_transaction() as conn:
        curated.publish_curated(conn, full=full)
        mart_counts = marts.build_marts(conn, as_of)
        conn.execute(
            "UPDATE ops.transform_runs SET status = 'succeeded', finished_at = now(), "
            "error = NULL, curated_counts = %s WHERE id = %s",
            (json.dumps(curated.row_counts(conn, "curated")), run_id))
    log.info("%s", publish_summary(as_of, mart_counts))
    return mart_counts


def publish_summary(as_of: date, mart_counts: dict[str, int]) -> str:
    tables = ", ".join(f"{table} {rows}" for table, rows in mart_counts.items())
    return f"curated and marts published for {as_of}: {tables} rows"


def summary(run_id: int) -> str:
    """One line for finance and on-call: what this run published."""
    with warehouse_connection() as conn:
        line = _summary_line(conn.cursor(row_factory=dict_row), run_id)
    log.info("%s", line)
    return line


def _summary_line(cursor, run_id: int) -> str:
    run = cursor.execute("SELECT as_of, status, error FROM ops.transform_runs WHERE id = %s",
                         (run_id,)).fetchone()
    if run is None:
        return f"transform run {run_id} not found"
    as_of = run["as_of"]
    if run["status"] != "succeeded":
        return f"transform run {run_id} for {as_of}: {run['status']}: {run['error']}"
    kpis = {row["kpi"]: row["value"] for row in cursor.execute(
        "SELECT kpi, value FROM marts.process_kpis WHERE as_of = %s", (as_of,))}
    items = {"ready": 0, "blocked": 0}
    amounts: dict[str, dict] = {"ready": {}, "blocked": {}}
    for total in cursor.execute(
            "SELECT status, currency, items, amount FROM marts.billing_totals "
            "WHERE as_of = %s AND status IN ('ready', 'blocked') ORDER BY status, currency",
            (as_of,)):
        items[total["status"]] += total["items"]
        amounts[total["status"]][total["currency"]] = total["amount"]
    exceptions = cursor.execute(
        "SELECT count(*) FILTER (WHERE severity = 'error') AS errors, "
        "count(*) FILTER (WHERE severity = 'warning') AS warnings "
        "FROM ops.exceptions WHERE status = 'open'").fetchone()
    return (
        f"marts published for {as_of}: {items['ready']} items ready to bill "
        f"({amounts_by_currency(amounts['ready'])}), {items['blocked']} blocked "
        f"({amounts_by_currency(amounts['blocked'])}); billable utilization "
        f"{_percent(kpis.get('billable_utilization'))}, timesheets on time "
        f"{_percent(kpis.get('timesheet_on_time_rate'))}; "
        f"{exceptions['errors']} quarantined records, {exceptions['warnings']} open warnings"
    )


def _percent(value) -> str:
    return "n/a" if value is None else f"{float(value):.1%}"
