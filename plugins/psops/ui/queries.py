"""What every finance page reads: the as-of dates of the marts, the process KPIs and the
transform runs behind them.

The pages read the warehouse through `psops.db.analyst_connection()` only: as
`psops_analyst`, read-only, rows as dicts. Every value a user chooses is a query
parameter; the one identifier chosen in code (the mart `marts_as_of` looks at) is
composed with psycopg.sql.
"""

from __future__ import annotations

from datetime import date

from psycopg import sql

# The marts whose as-of dates a page may follow.
AS_OF_MARTS = ("billing_readiness", "utilization_weekly")


def as_of_dates(conn) -> list[date]:
    """Every as-of date the billing mart has, newest first."""
    rows = conn.execute(
        "SELECT DISTINCT as_of FROM marts.billing_readiness ORDER BY as_of DESC"
    ).fetchall()
    return [row["as_of"] for row in rows]


def marts_as_of(conn, chosen: date | None, mart: str = "billing_readiness") -> date | None:
    """The latest as-of date of `mart` on or before `chosen` (the latest of all when None)."""
    if mart not in AS_OF_MARTS:
        raise ValueError(f"no as-of dates to read in {mart!r}; one of {AS_OF_MARTS}")
    query = sql.SQL(
        "SELECT max(as_of) AS as_of FROM {mart} "
        "WHERE %(chosen)s::date IS NULL OR as_of <= %(chosen)s::date"
    ).format(mart=sql.Identifier("marts", mart))
    row = conn.execute(query, {"chosen": chosen}).fetchone()
    return row["as_of"] if row else None


def process_kpis(conn, as_of: date) -> dict[str, dict]:
    rows = conn.execute(
        "SELECT kpi, value, numerator, denominator FROM marts.process_kpis WHERE as_of = %(as_of)s",
        {"as_of": as_of},
    ).fetchall()
    return {row["kpi"]: row for row in rows}


def can_read(conn, relation: str) -> bool:
    """Whether the current role (psops_analyst) may SELECT from `relation`."""
    row = conn.execute(
        "SELECT to_regclass(%(rel)s) IS NOT NULL "
        "AND has_table_privilege(%(rel)s, 'SELECT') AS ok", {"rel": relation}
    ).fetchone()
    return bool(row and row["ok"])


def transform_run_ids(conn, as_of: date) -> list[str]:
    """Airflow run ids of the succeeded transform runs for as_of, newest first, when the
    analyst may read ops.transform_runs (else empty: Airflow's own metadata is used)."""
    if not can_read(conn, "ops.transform_runs"):
        return []
    rows = conn.execute(
        """SELECT dag_run_id FROM ops.transform_runs
           WHERE as_of = %(as_of)s AND status = 'succeeded' AND dag_run_id IS NOT NULL
           ORDER BY finished_at DESC NULLS LAST""",
        {"as_of": as_of},
    ).fetchall()
    return [row["dag_run_id"] for row in rows]
