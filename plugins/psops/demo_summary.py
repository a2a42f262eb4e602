"""The short summary `make demo` prints from the marts of one as-of date.

    python -m psops.demo_summary 2026-03-31

It reads the warehouse of the Airflow connection `warehouse` (AIRFLOW_CONN_WAREHOUSE).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import date

from psycopg.rows import namedtuple_row

from psops.formatting import money

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


def _amounts(by_currency: dict) -> str:
    return ", ".join(f"{currency} {money(amount)}"
                     for currency, amount in sorted(by_currency.items())) or "0"


def summary_lines(conn, as_of: date) -> list[str]:
    params = {"as_of": as_of}
    with conn.cursor(row_factory=namedtuple_row) as cur:
        totals: dict = defaultdict(dict)
        counts: dict = defaultdict(int)
        for row in cur.execute(READY_AND_BLOCKED, params).fetchall():
            totals[row.status][row.currency] = row.amount
            counts[row.status] += row.items
        lines = [f"psops summary for as-of {as_of}",
                 f"  Ready to bill : {_amounts(totals['ready'])} ({counts['ready']} items)",
                 f"  Blocked       : {_amounts(totals['blocked'])} ({counts['blocked']} items)",
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


def print_from_warehouse(build_lines, what: str) -> int:
    """Print `build_lines(conn)` from the `warehouse` connection; one clear line on failure."""
    import psycopg
    from airflow.sdk.exceptions import AirflowException

    from psops.db import warehouse_connection
    from psops.oncall import first_line
    from psops.warehouse_migrations import MigrationError

    try:
        with warehouse_connection() as conn:
            print("\n".join(build_lines(conn)))
    except (AirflowException, MigrationError, psycopg.Error) as err:
        print(f"psops: error: cannot read {what}: {first_line(str(err), missing=repr(err))}",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    as_of = date.fromisoformat(argv[0]) if argv else date.today()
    return print_from_warehouse(lambda conn: summary_lines(conn, as_of), "the marts")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
