"""Marts of the warehouse contract from include/sql/marts/NN_*.sql, in file order,
for one as-of date: the rows of that as-of date are replaced, other dates untouched."""

from __future__ import annotations

from datetime import date

from psycopg import sql

from psops.settings import SQL_DIR
from psops.transform.sql_files import read_sql, statements

MART_TABLES = (  # in schema `marts`
    "utilization_weekly",
    "timesheet_compliance",
    "billing_readiness_blockers",
    "billing_readiness",
    "process_kpis",
    "project_margin",
)


def mart_files() -> list[str]:
    return [f"marts/{path.name}" for path in sorted((SQL_DIR / "marts").glob("[0-9][0-9]_*.sql"))]


def build_marts(conn, as_of: date) -> dict[str, int]:
    """Call inside a transaction. Returns the row count of each mart table for as_of."""
    for table in MART_TABLES:
        conn.execute(sql.SQL("DELETE FROM {} WHERE as_of = %s")
                     .format(sql.Identifier("marts", table)), (as_of,))
    for name in mart_files():
        for statement in statements(read_sql(name)):
            conn.execute(statement, {"as_of": as_of})
    return {table: _count(conn, table, as_of) for table in MART_TABLES}


def _count(conn, table: str, as_of: date) -> int:
    (count,) = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE as_of = %s")
                            .format(sql.Identifier("marts", table)), (as_of,)).fetchone()
    return count
