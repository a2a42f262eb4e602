"""The summary `make demo` prints once the pipeline ran: the marts of one as-of date,
then what the write-back created and corrected, what waits for finance and where the
alert went. Demo tooling, not product: bin/psops_demo.py runs it.

    .venv/bin/python bin/psops_demo_summary.py 2026-03-31

It reads the warehouse of the Airflow connection `warehouse` (AIRFLOW_CONN_WAREHOUSE).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
import psycopg  # noqa: E402
from airflow.sdk.exceptions import AirflowException  # noqa: E402
from psycopg.rows import namedtuple_row  # noqa: E402

from psops.db import warehouse_connection  # noqa: E402
from psops.formatting import (  # noqa: E402
    amounts_by_currency,
    money,
    worth_text,
)
from psops.oncall import first_line  # noqa: E402
from psops.warehouse_migrations import MigrationError  # noqa: E402
from psops.writeback.approval import waiting_batches  # noqa: E402
from psops.writeback.outbox import KIND_LABELS  # noqa: E402
from psops.writeback.planner import DEAL_RULE  # noqa: E402

WRITEBACK_HEADING = "\n==> Write-back: what was created and corrected, what waits for finance"

READY_AND_BLOCKED = """
    SELECT status, currency, items, amount FROM marts.billing_totals
    WHERE as_of = %(as_of)s AND status IN ('ready', 'blocked')
"""
BLOCKED_BY_REASON = """
    SELECT reason, currency, items, amount FROM marts.billing_blocked_by_reason
    WHERE as_of = %(as_of)s ORDER BY reason, currency
"""
UTILIZATION_LAST_4_WEEKS = """
    SELECT value, numerator, denominator FROM marts.process_kpis
    WHERE as_of = %(as_of)s AND kpi = 'billable_utilization'
"""
UNDER_TARGET = """
    SELECT count(*) AS people FROM (
        SELECT employee_id
        FROM marts.utilization_weekly
        WHERE as_of = %(as_of)s AND week_start >= %(as_of)s::date - 35
          AND week_start + 6 < %(as_of)s AND target_utilization IS NOT NULL
        GROUP BY employee_id, target_utilization
        HAVING sum(billable_hours) / nullif(sum(capacity_hours), 0) < target_utilization) t
"""
OPEN_EXCEPTIONS = """
    SELECT rule_id, severity, count(*) AS records FROM ops.exceptions
    WHERE status = 'open' GROUP BY 1, 2 ORDER BY 2, 3 DESC
"""

CONFIRMED_WRITES = """
    SELECT kind, purpose, count(*) AS writes, count(*) FILTER (WHERE adopted) AS adopted,
           string_agg(coalesce(project_code, record_key) || '=' || coalesce(remote_id, '?'),
                      ', ' ORDER BY id) AS which
    FROM ops.outbox WHERE status = 'confirmed' GROUP BY kind, purpose ORDER BY purpose, kind
"""
UNCONFIRMED_WRITES = """
    SELECT status, count(*) AS writes,
           jsonb_agg(jsonb_build_object('worth', worth, 'currency', currency)) AS changes
    FROM ops.outbox WHERE status <> 'confirmed' GROUP BY status ORDER BY status
"""
OPEN_EXCEPTIONS_OF_RULE = """
    SELECT record_key FROM ops.exceptions
    WHERE rule_id = %(rule_id)s AND status = 'open' ORDER BY record_key
"""
LAST_DIGEST = """
    SELECT status, destination, items, text FROM ops.alert_digests ORDER BY id DESC LIMIT 1
"""


def marts_summary_lines(conn, as_of: date) -> list[str]:
    params = {"as_of": as_of}
    with conn.cursor(row_factory=namedtuple_row) as cur:
        totals: dict = defaultdict(dict)
        counts: dict = defaultdict(int)
        for row in cur.execute(READY_AND_BLOCKED, params).fetchall():
            totals[row.status][row.currency] = row.amount
            counts[row.status] += row.items
        lines = [f"psops summary for as-of {as_of}",
                 f"  Ready to bill : {amounts_by_currency(totals['ready'])} ({counts['ready']} items)",
                 f"  Blocked       : {amounts_by_currency(totals['blocked'])} ({counts['blocked']} items)",
                 "  Blocked by reason (an item with several reasons counts under each):"]
        for row in cur.execute(BLOCKED_BY_REASON, params).fetchall():
            lines.append(f"    {row.reason:28s} {row.currency} {money(row.amount):>14}  "
                         f"({row.items} items)")
        kpi = cur.execute(UTILIZATION_LAST_4_WEEKS, params).fetchone()
        if kpi and kpi.value is not None:
            under = cur.execute(UNDER_TARGET, params).fetchone().people
            lines.append(f"  Utilization, last 4 complete weeks: {kpi.value * 100:.1f}% "
                         f"({kpi.numerator:,.0f} billable of {kpi.denominator:,.0f} capacity "
                         f"hours); {under} people under their target")
        lines.append("  Open exceptions by rule:")
        for row in cur.execute(OPEN_EXCEPTIONS).fetchall():
            lines.append(f"    {row.rule_id:40s} {row.severity:8s} {row.records}")
    return lines


def writeback_summary_lines(conn) -> list[str]:
    with conn.cursor(row_factory=namedtuple_row) as cur:
        lines = ["Written to the source systems (ops.outbox, confirmed):"]
        lines += [_written_line(row) for row in cur.execute(CONFIRMED_WRITES).fetchall()] \
            or ["  nothing"]
        for row in cur.execute(UNCONFIRMED_WRITES).fetchall():
            lines.append(f"  {row.status:<17} {row.writes:>3} "
                         f"(worth {worth_text(row.changes, currency_codes=True)})")
        for batch in waiting_batches(conn):
            lines.append(f"Awaiting finance: batch {batch.batch_id}, {batch.corrections} "
                         f"corrections worth {batch.worth}, expires "
                         f"{batch.expires_at:%Y-%m-%d %H:%M} UTC: run psops_approve_corrections "
                         f"(UI: Required actions)")
        invalid = [row.record_key for row in cur.execute(
            OPEN_EXCEPTIONS_OF_RULE, {"rule_id": DEAL_RULE.rule_id}).fetchall()]
        if invalid:
            lines.append(f"Deals that cannot be set up (ops.exceptions {DEAL_RULE.rule_id}): "
                         + ", ".join(invalid))
        digest = cur.execute(LAST_DIGEST).fetchone()
        if digest:
            lines.append(f"Alert: {digest.status} to {digest.destination}, {digest.items} items"
                         + (f" - {digest.text}" if digest.text else ""))
    return lines


def _written_line(row) -> str:
    detail = row.which if row.kind != "psa_time_entry_rate" else f"{row.writes} time entries"
    adopted = f", {row.adopted} adopted after a lost answer" if row.adopted else ""
    return (f"  {KIND_LABELS[row.kind]:<17} {row.writes:>3} ({row.purpose}{adopted}): "
            f"{detail[:90]}")


def main(argv: list[str]) -> int:
    """Print both summaries from the `warehouse` connection; one clear line on failure."""
    as_of = date.fromisoformat(argv[0]) if argv else date.today()
    try:
        with warehouse_connection() as conn:
            print("\n".join(marts_summary_lines(conn, as_of)))
            print(WRITEBACK_HEADING)
            print("\n".join(writeback_summary_lines(conn)))
    except (AirflowException, MigrationError, psycopg.Error) as err:
        print(f"psops: error: cannot read the warehouse: "
              f"{first_line(str(err), missing=repr(err))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
