"""The short summary `make demo` prints from the marts of one as-of date.

    python -m psops.demo_summary 2026-03-31
"""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import date

import psycopg

from psops.warehouse import WarehouseError, configured_target

READY_AND_BLOCKED = """
    SELECT status, coalesce(currency, '?'), count(*), sum(amount)
    FROM marts.billing_readiness
    WHERE as_of = %s AND status IN ('ready', 'blocked')
    GROUP BY 1, 2 ORDER BY 1, 2
"""
BLOCKED_BY_REASON = """
    SELECT reason, coalesce(currency, '?'), count(*), sum(amount)
    FROM marts.billing_readiness, unnest(blocking_reasons) AS reason
    WHERE as_of = %s AND status = 'blocked'
    GROUP BY 1, 2 ORDER BY 1, 2
"""
UTILIZATION_LAST_4_WEEKS = """
    SELECT value, numerator, denominator FROM marts.process_kpis
    WHERE as_of = %s AND kpi = 'billable_utilization'
"""
UNDER_TARGET = """
    SELECT count(*) FROM (
        SELECT employee_id
        FROM marts.utilization_weekly
        WHERE as_of = %(as_of)s AND week_start >= %(as_of)s::date - 35
          AND week_start + 6 < %(as_of)s AND target_utilization IS NOT NULL
        GROUP BY employee_id, target_utilization
        HAVING sum(billable_hours) / nullif(sum(capacity_hours), 0) < target_utilization) t
"""
OPEN_EXCEPTIONS = """
    SELECT rule_id, severity, count(*) FROM ops.exceptions
    WHERE status = 'open' GROUP BY 1, 2 ORDER BY 2, 3 DESC
"""


def _money(by_currency: dict) -> str:
    return ", ".join(f"{currency} {amount:,.2f}" for currency, amount in sorted(by_currency.items())) \
        or "0"


def summary_lines(conn, as_of: date) -> list[str]:
    lines = [f"psops summary for as-of {as_of}"]
    totals: dict = defaultdict(dict)
    counts: dict = defaultdict(int)
    for status, currency, count, amount in conn.execute(READY_AND_BLOCKED, (as_of,)):
        totals[status][currency] = amount
        counts[status] += count
    lines.append(f"  Ready to bill : {_money(totals['ready'])} ({counts['ready']} items)")
    lines.append(f"  Blocked       : {_money(totals['blocked'])} ({counts['blocked']} items)")
    lines.append("  Blocked by reason (an item with several reasons counts under each):")
    for reason, currency, count, amount in conn.execute(BLOCKED_BY_REASON, (as_of,)):
        lines.append(f"    {reason:28s} {currency} {amount:>14,.2f}  ({count} items)")
    row = conn.execute(UTILIZATION_LAST_4_WEEKS, (as_of,)).fetchone()
    if row and row[0] is not None:
        under = conn.execute(UNDER_TARGET, {"as_of": as_of}).fetchone()[0]
        lines.append(f"  Utilization, last 4 complete weeks: {row[0] * 100:.1f}% "
                     f"({row[1]:,.0f} billable of {row[2]:,.0f} capacity hours); "
                     f"{under} people under their target")
    lines.append("  Open exceptions by rule:")
    for rule_id, severity, count in conn.execute(OPEN_EXCEPTIONS):
        lines.append(f"    {rule_id:40s} {severity:8s} {count}")
    return lines


def print_from_warehouse(build_lines, what: str) -> int:
    """Print `build_lines(conn)` from the configured warehouse; one clear line on failure."""
    try:
        with psycopg.connect(configured_target().conninfo()) as conn:
            print("\n".join(build_lines(conn)))
    except (WarehouseError, psycopg.Error) as err:
        print(f"psops: error: cannot read {what}: {str(err).strip().splitlines()[0]}",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    as_of = date.fromisoformat(argv[0]) if argv else date.today()
    return print_from_warehouse(lambda conn: summary_lines(conn, as_of), "the marts")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
