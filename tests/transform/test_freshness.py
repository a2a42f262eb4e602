"""When psops_transform goes ahead: the four Assets, or the daily cut-off with a freshness
rule (psops.transform.freshness). The Asset path runs under the real scheduler in
tests/stack; here the cut-off decision and the schedule the DAG carries."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime

from psops.catalogue import system_names
from psops.transform.freshness import decide, read_state
from tests.conftest import REPO_ROOT

AS_OF = date(2026, 3, 31)
SYSTEMS = system_names()


def at(day: int, hour: int = 1) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def test_runs_started_by_assets_or_by_hand_always_go_ahead():
    for run_type in ("asset_triggered", "manual"):
        decision = decide(run_type, AS_OF, dict.fromkeys(SYSTEMS), None)
        assert decision.run
        assert decision.stale == SYSTEMS


def test_cutoff_skips_when_nothing_was_ever_ingested():
    decision = decide("scheduled", AS_OF, dict.fromkeys(SYSTEMS), None)
    assert not decision.run
    assert "nothing has been ingested" in decision.reason


def test_cutoff_skips_when_the_marts_include_every_latest_load():
    loads = dict.fromkeys(SYSTEMS, at(31, 1))
    decision = decide("scheduled", AS_OF, loads, latest_publish=at(31, 2))
    assert not decision.run
    assert "already include" in decision.reason


def test_cutoff_goes_ahead_with_the_late_sources_named():
    # ERP delivered nothing today: the others' fresh data is published, ERP's last load used.
    loads = {**dict.fromkeys(SYSTEMS, at(31, 1)), "erp": at(30, 1)}
    decision = decide("scheduled", AS_OF, loads, latest_publish=at(30, 2))
    assert decision.run
    assert decision.stale == ("erp",)
    assert "no data for 2026-03-31 yet from erp" in decision.reason


def test_cutoff_goes_ahead_when_a_source_never_delivered():
    loads = {**dict.fromkeys(SYSTEMS, at(31, 1)), "hris": None}
    decision = decide("scheduled", AS_OF, loads, latest_publish=None)
    assert decision.run and decision.stale == ("hris",)


def test_state_is_read_from_the_warehouse(database_factory):
    import psycopg

    target = database_factory.create()  # of its own: other tests' ingest runs stay out
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        _check_state(conn)


def _check_state(warehouse_conn):
    warehouse_conn.execute(
        "INSERT INTO ops.ingest_runs (dag_id, dag_run_id, system, stream, mode, status, "
        "finished_at) VALUES ('psops_ingest_erp', 'r1', 'erp', 'jobs', 'incremental', "
        "'succeeded', '2026-03-31T01:00Z'), ('psops_ingest_erp', 'r2', 'erp', 'jobs', "
        "'incremental', 'failed', '2026-03-31T05:00Z')")
    latest, _ = read_state(warehouse_conn)
    assert latest["erp"] == at(31, 1)
    assert latest["crm"] is None


def _parse(env: dict[str, str]) -> str:
    code = """
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder="dags")
assert not bag.import_errors, bag.import_errors
print("ingest", repr(bag.dags["psops_ingest_crm"].schedule))
tt = bag.dags["psops_transform"].timetable
print("transform", type(tt).__name__, tt.timetable.expression)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=180, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr[-3000:]
    return "\n".join(line for line in result.stdout.splitlines()
                     if line.startswith(("ingest ", "transform ")))


def test_schedules_come_from_the_environment():
    default = _parse({})
    assert "'@daily'" in default and "AssetOrTimeSchedule 0 6 * * *" in default
    changed = _parse({"PSOPS_INGEST_SCHEDULE": "none",
                      "PSOPS_TRANSFORM_CUTOFF_CRON": "30 7 * * 1-5"})
    assert "None" in changed.splitlines()[0]
    assert "AssetOrTimeSchedule 30 7 * * 1-5" in changed
