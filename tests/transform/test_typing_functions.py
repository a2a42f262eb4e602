"""The safe casts of staging (migration 0014) give what the first ones (0003) gave, on
every calendar edge and malformed value, NULL where those failed, and are inlined into a
staging SELECT."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import psycopg
import pytest

from psops.warehouse_migrations import MIGRATIONS_DIR

pytestmark = pytest.mark.db

FUNCTIONS = ("to_date_or_null", "to_ts_or_null")


def _date_like_values() -> list[str]:
    values = []
    for year in ("0000", "0001", "1900", "1999", "2000", "2023", "2024", "2100", "2400"):
        for month in ("00", "01", "02", "04", "06", "09", "11", "12", "13"):
            for day in ("00", "01", "28", "29", "30", "31", "32"):
                values.append(f"{year}-{month}-{day}")
    return values


TEXT_VALUES = [
    *_date_like_values(),
    "2025-03-01T10:00:00Z", "2025-03-01T10:00:00.123456Z", "2025-03-01 10:00",
    "2025-03-01T10:00:00+02:00", "2025-03-01T10:00:00-0530", "2025-03-01T10:00+02",
    "2025-02-29T10:00:00Z", "2024-02-29T23:59:59Z", "2025-03-01T24:00:00Z",
    "2025-03-01T10:60:00Z", "2025-03-01T10:00:00.1234567Z", "1741125600000",
    "174112560000000", "1741125600", "2025-3-1", "01/03/2025", "", " ", "null", "2025-03-01x",
    "2025-03-01junk", None,
]


@pytest.fixture
def first_definitions(warehouse_conn):
    """0003's to_date_or_null and to_ts_or_null, created in a schema of their own."""
    text = (MIGRATIONS_DIR / "0003_curated.sql").read_text()
    warehouse_conn.execute("DROP SCHEMA IF EXISTS typing_0003 CASCADE")
    warehouse_conn.execute("CREATE SCHEMA typing_0003")
    for name in FUNCTIONS:
        body = re.search(rf"CREATE OR REPLACE FUNCTION staging\.{name}\(.*?\$\$;", text, re.S)
        warehouse_conn.execute(body.group(0).replace("staging.", "typing_0003."))
    yield "typing_0003"
    warehouse_conn.execute("DROP SCHEMA typing_0003 CASCADE")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_same_results_as_the_first_definitions(warehouse_conn, first_definitions, name):
    warehouse_conn.execute("SET timezone = 'UTC'")
    rows = warehouse_conn.execute(
        f"SELECT v, staging.{name}(v), {first_definitions}.{name}(v) FROM unnest(%s::text[]) v",
        (TEXT_VALUES,)).fetchall()
    different = [(v, now, before) for v, now, before in rows if now != before]
    assert different == []
    assert len({now for _, now, _ in rows}) > 20  # valid values as well as NULLs


@pytest.mark.parametrize("value", [
    "2024-01-28-0800", "2024-01-28-08", "2024-01-01 10:00+16", "2024-01-01T10:00:00+23:00",
    "2024-01-01T10:00+05:60", "2024-01-01 10:00+0575", "2024-01-28+05:75"])
def test_what_made_the_first_cast_fail_is_null(warehouse_conn, first_definitions, value):
    """0003 let these through to a cast that raised, failing the whole staging statement."""
    with pytest.raises(psycopg.DataError):
        with warehouse_conn.transaction():
            warehouse_conn.execute(f"SELECT {first_definitions}.to_ts_or_null(%s)", (value,))
    assert warehouse_conn.execute("SELECT staging.to_ts_or_null(%s)", (value,)).fetchone() \
        == (None,)


def test_calendar_edges(warehouse_conn):
    def to_date(value):
        return warehouse_conn.execute("SELECT staging.to_date_or_null(%s)", (value,)).fetchone()[0]

    assert to_date("2024-02-29") == date(2024, 2, 29)
    assert to_date("2000-02-29") == date(2000, 2, 29)
    assert to_date("2100-02-29") is None and to_date("2025-02-29") is None
    assert to_date("2025-04-31") is None and to_date("0000-01-01") is None
    (stamp,) = warehouse_conn.execute(
        "SELECT staging.to_ts_or_null('2025-03-01T10:00:00+02:00')").fetchone()
    assert stamp == datetime(2025, 3, 1, 8, tzinfo=UTC)


def test_inlined_into_a_select(warehouse_conn):
    """An inlined function leaves no call of its own in the plan: its body (the regular
    expression) shows in the expression instead."""
    plan = "\n".join(row[0] for row in warehouse_conn.execute(
        "EXPLAIN VERBOSE SELECT staging.to_ts_or_null(v), staging.to_date_or_null(v) "
        "FROM unnest(ARRAY['2025-03-01']) v"))
    assert "to_ts_or_null" not in plan and "to_date_or_null" not in plan
    assert "~" in plan
