"""HRIS whos_out numbers holidays and time off in separate sequences: a holiday whose id
equals a time-off request's id is still a holiday (issue #12, item 5)."""

from __future__ import annotations

from datetime import date

import psycopg

from psops.transform.runner import run_transform
from sandbox.scenario import SCENARIO_TODAY, build_scenario_dataset
from sandbox.server import start_sandbox
from tests.conftest import temporary_environment
from tests.ingest.conftest import ingest_everything

ALICE, W3 = "101", date(2026, 3, 16)  # the week of the company holiday, Wed 03-18


def colliding_ids(today: date):
    """The scenario with the company day numbered like Alice's approved vacation
    (request 1201, Mon 03-23): whos_out lists the time off after the holiday."""
    dataset = build_scenario_dataset(today)
    company_day = next(h for h in dataset.holidays if h["start"] == "2026-03-18")
    company_day["id"] = 1201
    return dataset


def test_a_holiday_survives_a_time_off_entry_with_the_same_id(database_factory):
    target = database_factory.create()
    with start_sandbox(dataset=colliding_ids, today=SCENARIO_TODAY, port=0) as sandbox:
        ingest_everything(target, sandbox)
    with temporary_environment(AIRFLOW_CONN_WAREHOUSE=target.airflow_uri()):
        run_transform(SCENARIO_TODAY)
    with psycopg.connect(target.conninfo()) as conn:
        holidays = conn.execute(
            "SELECT holiday_id, start_date FROM curated.holidays ORDER BY start_date").fetchall()
        capacity = conn.execute(
            "SELECT capacity_hours FROM marts.utilization_weekly "
            "WHERE as_of = %s AND employee_id = %s AND week_start = %s",
            (SCENARIO_TODAY, ALICE, W3)).fetchone()[0]
    assert [(key, day.isoformat()) for key, day in holidays] == [
        ("holiday:9001", "2026-01-01"), ("holiday:1201", "2026-03-18")]
    assert capacity == 32  # 4 working days x 8 h: the holiday is not a working day
