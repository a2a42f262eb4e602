"""Marts of the warehouse contract from include/sql/marts/NN_*.sql, in file order,
for one as-of date: the rows of that as-of date are replaced, other dates untouched."""

from __future__ import annotations

from datetime import date

from psops.transform.sql_files import SQL_DIR, read_sql, statements

MART_TABLES = (
    "marts.utilization_weekly",
    "marts.timesheet_compliance",
    "marts.billing_readiness_blockers",
    "marts.billing_readiness",
    "marts.process_kpis",
    "marts.project_margin",
)


def mart_files() -> list[str]:
    return [f"marts/{p.name}" for p in sorted((SQL_DIR / "marts").glob("[0-9][0-9]_*.sql"))]


def build_marts(conn, as_of: date) -> dict[str, int]:
    """Call inside a transaction. Returns the row count of each mart for as_of."""
    for table in MART_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE as_of = %s", (as_of,))
    for name in mart_files():
        for statement in statements(read_sql(name)):
            conn.execute(statement, {"as_of": as_of})
    return {
        table: conn.execute(f"SELECT count(*) FROM {table} WHERE as_of = %s", (as_of,)).fetchone()[0]
        for table in MART_TABLES
    }
