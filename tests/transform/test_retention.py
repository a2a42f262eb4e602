"""Raw retention (psops_maintenance): old versions go, every record's latest version stays
(as the transform's staging decides it), and the transform gives the same result after it.
as_of = Wed 2026-03-04; raw rows are back-dated to look loaded long ago."""

from __future__ import annotations

import json

import pytest
from psycopg import sql

from psops import catalogue
from psops.retention import RetentionError, retention_days, run_raw_retention
from psops.transform.runner import run_transform
from tests.conftest import run_bin_airflow
from tests.transform.conftest import (
    AS_OF,
    RawWriter,
    erp_job,
    holiday,
    hris_employee,
    load_hris,
    milestone,
    psa_project,
    rows,
    time_entry,
    time_off_request,
)

U, V, W = "u@x.com", "v@x.com", "w@x.com"
T1, T2, T3 = "2026-02-01T09:00:00Z", "2026-02-10T09:00:00Z", "2026-02-20T09:00:00Z"
DERIVED = ("ops.exceptions", "ops.quality_results", "ops.transform_runs",
           "ops.transform_watermarks", "confidential.employee_cost_rates")


def loaded_days_ago(conn, table: str, days: int, run_id: int | None = None) -> None:
    """Make raw.<table>'s rows (of one run) look loaded `days` days ago."""
    condition = sql.SQL("run_id = {}").format(run_id) if run_id else sql.SQL("true")
    conn.execute(sql.SQL("UPDATE {} SET loaded_at = now() - make_interval(days => {}) WHERE {}")
                 .format(sql.Identifier("raw", table), days, condition))


def versions(conn, table: str) -> list[tuple]:
    """(record_id, payload's version marker) of every row of raw.<table>, in load order."""
    return rows(conn, sql.SQL("SELECT record_id, coalesce(payload->>'updated_at', "
                              "payload->>'customCostRate', payload->>'name') FROM {} "
                              "ORDER BY load_seq").format(sql.Identifier("raw", table)))


def load_history(conn, raw: RawWriter) -> None:
    """Several versions of records of incremental and snapshot streams, most of them
    loaded 100 days ago; the last load of each stream is the newest."""
    load_hris(raw, [hris_employee(1, U, cost="50"), hris_employee(2, V), hris_employee(3, W)],
              [time_off_request(1, 1, {"2026-03-02": 1})], [holiday(1, "2026-01-01", name="Old")])
    load_hris(raw, [hris_employee(1, U, cost="60"), hris_employee(2, V)],
              [time_off_request(1, 1, {"2026-03-02": 1})], [holiday(1, "2026-01-01", name="Mid")])
    load_hris(raw, [hris_employee(1, U, cost="70"), hris_employee(2, V, target="80")],
              [time_off_request(1, 1, {"2026-03-03": 1})], [holiday(2, "2026-03-04", name="New")])
    raw.load("erp_jobs", [erp_job(1, "PRJ-00001"), erp_job(2, "PRJ-00002")])
    raw.load("psa_projects", [psa_project(1, "PRJ-00001", updated_at=T1),
                              psa_project(2, "PRJ-00002", updated_at=T1)])
    raw.load("psa_projects", [psa_project(1, "PRJ-00001", status="on_hold", updated_at=T2)])
    # a stale copy of version T1 loaded after T2 (a late page, an overlap window): T2 stays
    # the latest, by update time, although the stale copy was loaded last
    raw.load("psa_projects", [psa_project(1, "PRJ-00001", updated_at=T1)])
    raw.load("psa_milestones", [milestone(11, 1, "PRJ-00001", 1000, "2026-02-15",
                                          status="completed", updated_at=T1)])
    raw.load("psa_milestones", [milestone(11, 1, "PRJ-00001", 1000, "2026-02-15",
                                          accepted_at=T2, updated_at=T2)])
    raw.load("psa_time_entries", [time_entry(101, "2026-03-02", 4, U, status="submitted",
                                             updated_at=T1),
                                  time_entry(102, "2026-03-02", 8, V, updated_at=T1)])
    # 101: approved with more hours; 102: a copy without an update time loses (NULLS LAST)
    # but is kept: loaded after the winner, it is what version_time_unparseable reads
    raw.load("psa_time_entries", [time_entry(101, "2026-03-02", 6, U, updated_at=T2),
                                  time_entry(102, "2026-03-02", 1, V, updated_at=None)])
    for stream in catalogue.streams():
        loaded_days_ago(conn, stream.raw_table, 100)
    # a newer version loaded yesterday: history younger than N days is kept too
    recent = raw.load("psa_time_entries", [time_entry(101, "2026-03-02", 7, U, updated_at=T3)])
    loaded_days_ago(conn, "psa_time_entries", 1, recent)


def published(conn) -> dict[str, list[tuple]]:
    """Every curated table, the confidential cost rates and every mart, row by row."""
    tables = [("curated", entity.table) for entity in catalogue.entities().values()]
    tables += [("confidential", "employee_cost_rates")]
    tables += rows(conn, "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = 'marts'")
    return {f"{schema}.{table}": rows(conn, sql.SQL("SELECT * FROM {} t ORDER BY t::text")
                                      .format(sql.Identifier(schema, table)))
            for schema, table in tables}


def transform_from_scratch(conn) -> dict[str, list[tuple]]:
    """Forget everything the transform derived, re-stage all of raw and publish."""
    tables = rows(conn, "SELECT schemaname, tablename FROM pg_tables "
                        "WHERE schemaname IN ('staging', 'curated', 'marts')")
    names = [sql.Identifier(*name) for name in tables]
    names += [sql.Identifier(*name.split(".")) for name in DERIVED]
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(names)))
    run_transform(AS_OF)
    return published(conn)


def test_old_versions_go_and_every_records_latest_stays(wh, raw):
    load_history(wh, raw)
    report = run_raw_retention("manual__retention", days=90)

    assert versions(wh, "psa_projects") == [("2", T1), ("1", T2)]
    assert versions(wh, "psa_milestones") == [("11", T2)]
    # 101's T2 version is the latest of the old ones but not the latest: deleted;
    # yesterday's T3 version is kept; 102's timed version wins, its untimed copy loaded
    # after it stays
    assert versions(wh, "psa_time_entries") == [("102", T1), ("102", None), ("101", T3)]
    # snapshot streams: the latest snapshot's rows, though loaded 100 days ago too
    assert versions(wh, "hris_employees") == [("1", "70"), ("2", "50")]
    assert [name for _, name in versions(wh, "hris_whos_out")] == ["New"]
    assert [r[0] for r in versions(wh, "hris_time_off_requests")] == ["1"]
    outcome = {t.table: (t.deleted, t.kept) for t in report.tables}
    assert outcome["raw.psa_projects"] == (2, 2)
    assert outcome["raw.psa_time_entries"] == (2, 3)
    assert outcome["raw.hris_employees"] == (5, 2)
    assert outcome["raw.erp_jobs"] == (0, 2)
    assert set(outcome) == {f"raw.{s.raw_table}" for s in catalogue.streams()}
    assert (report.deleted, report.kept) == (sum(d for d, _ in outcome.values()),
                                             sum(k for _, k in outcome.values()))


def test_the_transform_publishes_the_same_after_retention(wh, raw):
    load_history(wh, raw)
    before = transform_from_scratch(wh)
    run_raw_retention("manual__retention", days=90)
    after = transform_from_scratch(wh)
    assert before["curated.projects"] and before["marts.billing_readiness"]
    assert before["curated.employees"] and before["confidential.employee_cost_rates"]
    assert after == before


def test_an_unparseable_newer_copy_stays_so_its_quarantine_holds(wh, raw):
    """Project 2's newest copy has an update time that cannot be read: the older, timed
    copy wins the version order, yet the record stays quarantined
    (project.version_time_unparseable) for as long as the untimed copy is in raw."""
    load_hris(raw, [hris_employee(1, U)])
    raw.load("erp_jobs", [erp_job(1, "PRJ-00001"), erp_job(2, "PRJ-00002")])
    raw.load("psa_projects", [psa_project(1, "PRJ-00001", updated_at=T1),
                              psa_project(2, "PRJ-00002", updated_at=T1)])
    untimed = dict(psa_project(2, "PRJ-00002", updated_at="last Tuesday"), name="Renamed")
    wh.execute("INSERT INTO raw.psa_projects (record_id, source_updated_at, payload, run_id) "
               "VALUES ('2', NULL, %s, %s)", (json.dumps(untimed), raw.start_run("psa_projects")))
    for stream in catalogue.streams():
        loaded_days_ago(wh, stream.raw_table, 100)
    quarantined = ("SELECT record_key FROM ops.exceptions WHERE status = 'open' "
                   "AND rule_id = 'project.version_time_unparseable'")
    run_transform(AS_OF)
    assert rows(wh, quarantined) == [("2",)]

    run_raw_retention("manual__retention", days=90)
    run_transform(AS_OF)

    assert versions(wh, "psa_projects") == [("1", T1), ("2", T1), ("2", "last Tuesday")]
    assert rows(wh, quarantined) == [("2",)]
    assert rows(wh, "SELECT project_id FROM curated.projects") == [("1",)]


def test_versions_younger_than_n_days_are_history_that_stays(wh, raw):
    load_history(wh, raw)
    report = run_raw_retention("manual__retention", days=200)
    assert report.deleted == 0
    assert len(versions(wh, "psa_projects")) == 4


def test_a_snapshot_stream_without_a_succeeded_run_keeps_its_rows(wh, raw):
    run_id = raw.start_run("hris_employees", status="failed")
    raw.append("hris_employees", [hris_employee(1, U)], run_id)
    loaded_days_ago(wh, "hris_employees", 100)
    report = run_raw_retention("manual__retention", days=1)
    assert {t.table: t.deleted for t in report.tables}["raw.hris_employees"] == 0
    assert len(versions(wh, "hris_employees")) == 1


def test_the_run_is_recorded_with_what_it_deleted_per_table(wh, raw):
    load_history(wh, raw)
    report = run_raw_retention("manual__retention", days=90)
    (status, days, dag_run_id, tables, deleted, kept), = rows(
        wh, "SELECT status, retention_days, dag_run_id, tables, deleted, kept "
            "FROM ops.maintenance_runs WHERE id = %s", report.run_id)
    assert (status, days, dag_run_id) == ("succeeded", 90, "manual__retention")
    assert tables["raw.psa_projects"] == {"deleted": 2, "kept": 2}
    assert (deleted, kept) == (report.deleted, report.kept)
    assert report.as_dict()["tables"]["raw.psa_projects"] == {"deleted": 2, "kept": 2}
    assert "raw.psa_projects: deleted 2, kept 2" in report.summary()


@pytest.mark.parametrize("value", ["-1", "ninety"])
def test_a_retention_that_is_not_a_whole_number_of_days_is_refused(monkeypatch, value):
    monkeypatch.setenv("PSOPS_RAW_RETENTION_DAYS", value)
    with pytest.raises(RetentionError, match="PSOPS_RAW_RETENTION_DAYS"):
        retention_days()


def test_the_setting_defaults_to_90_days(monkeypatch):
    monkeypatch.delenv("PSOPS_RAW_RETENTION_DAYS", raising=False)
    assert retention_days() == 90


@pytest.mark.slow
def test_the_maintenance_dag_runs_the_retention(wh, raw, airflow_home, warehouse_uri):
    load_history(wh, raw)
    result = run_bin_airflow(["dags", "test", "psops_maintenance", "2026-03-31"], airflow_home,
                             env={"AIRFLOW_CONN_WAREHOUSE": warehouse_uri,
                                  "PSOPS_RAW_RETENTION_DAYS": "30"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "state=success" in output or "DagRun Finished" in output, output[-2000:]
    assert "raw.psa_projects: deleted 2, kept 2" in output  # the task log
    assert "Returned value was: {'maintenance_run_id'" in output
    assert "'raw.psa_projects': {'deleted': 2, 'kept': 2}" in output
    (status, days, dag_run_id, deleted), = rows(
        wh, "SELECT status, retention_days, dag_run_id, deleted FROM ops.maintenance_runs "
            "ORDER BY id DESC LIMIT 1")
    assert (status, days, deleted) == ("succeeded", 30, 14)
    assert dag_run_id.startswith("manual__")
    assert versions(wh, "psa_projects") == [("2", T1), ("1", T2)]
