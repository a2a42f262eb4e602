"""Version times a record cannot be ordered by (issue #12, items 1 and 6): a version
time in the future is listed (warning), an unparseable one quarantines the record."""

from __future__ import annotations

import json

from psops.transform.runner import run_transform
from tests.transform.conftest import AS_OF, erp_job, hris_employee, load_hris, psa_project, rows


def _open(conn, rule_id):
    return rows(conn, "SELECT record_key, severity FROM ops.exceptions "
                      "WHERE rule_id = %s AND status = 'open' ORDER BY record_key", rule_id)


def _curated_projects(conn):
    return rows(conn, "SELECT project_id, name FROM curated.projects ORDER BY project_id")


def test_a_future_version_time_is_listed_and_the_record_kept(wh, raw):
    load_hris(raw, [hris_employee(1, "u@x.com")])
    raw.load("erp_jobs", [erp_job(1, "PRJ-00001")])
    raw.load("psa_projects", [psa_project(1, "PRJ-00001"),
                              psa_project(2, "PRJ-00002", updated_at="2099-01-01T00:00:00Z")])
    run_transform(AS_OF)
    assert _open(wh, "project.version_time_future") == [("2", "warning")]
    assert [key for key, _ in _curated_projects(wh)] == ["1", "2"]
    # no longer in the future (time passed): the exception resolves
    wh.execute("UPDATE raw.psa_projects SET source_updated_at = now() - interval '1 day'")
    wh.execute("UPDATE staging.projects SET source_updated_at = now() - interval '1 day'")
    run_transform(AS_OF)
    assert _open(wh, "project.version_time_future") == []


def _load_unparseable(raw, wh, record: dict) -> None:
    """A raw copy whose update time the engine could not parse (version time NULL)."""
    run_id = raw.start_run("psa_projects")
    wh.execute("INSERT INTO raw.psa_projects (record_id, source_updated_at, payload, run_id) "
               "VALUES (%s, NULL, %s, %s)", (str(record["id"]), json.dumps(record), run_id))


def test_an_unparseable_version_time_quarantines_the_record_until_a_clean_version(wh, raw):
    load_hris(raw, [hris_employee(1, "u@x.com")])
    raw.load("erp_jobs", [erp_job(1, "PRJ-00001"), erp_job(2, "PRJ-00002")])
    raw.load("psa_projects", [psa_project(1, "PRJ-00001"), psa_project(2, "PRJ-00002")])
    run_transform(AS_OF)
    assert [key for key, _ in _curated_projects(wh)] == ["1", "2"]

    newer = psa_project(2, "PRJ-00002", updated_at="last Tuesday")
    newer["name"] = "Renamed"
    _load_unparseable(raw, wh, newer)  # would lose to the older copy, silently
    run_transform(AS_OF)
    assert _open(wh, "project.version_time_unparseable") == [("2", "error")]
    assert [key for key, _ in _curated_projects(wh)] == ["1"]

    raw.load("psa_projects", [dict(newer, updated_at="2026-02-01T00:00:00Z")])
    run_transform(AS_OF)
    assert _open(wh, "project.version_time_unparseable") == []
    assert _curated_projects(wh) == [("1", "Project PRJ-00001"), ("2", "Renamed")]
