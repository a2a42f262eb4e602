"""Publish compares only the records changed since the last publish (ops.curated_pending),
and gives the curated tables a comparison of every row gives."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from psops.transform import curated
from psops.transform.runner import run_transform
from tests.transform.conftest import (
    AS_OF,
    erp_job,
    hris_employee,
    load_hris,
    psa_project,
    rows,
    time_entry,
)

A, B = "a@x.com", "b@x.com"


def _full_sync_changes(conn) -> dict[str, dict[str, int]]:
    """What a comparison of every row would still change (rolled back)."""
    with conn.transaction(force_rollback=True):
        counts = curated.publish_curated(conn, full=True)
    return {name: c for name, c in counts.items() if c["deleted"] or c["inserted"]}


@pytest.fixture
def published(wh, raw):
    load_hris(raw, [hris_employee(1, A), hris_employee(2, B)])
    raw.load("psa_projects", [psa_project(1, "PRJ-00001")])
    raw.load("erp_jobs", [erp_job(1, "PRJ-00001")])
    raw.load("psa_time_entries", [
        time_entry(11, "2026-03-02", 8, A), time_entry(12, "2026-03-02", 30, A),
        time_entry(13, "2026-03-03", 6, B), time_entry(14, "2026-03-03", 4, "nobody@x.com")])
    run_transform(AS_OF)
    assert rows(wh, "SELECT time_entry_id FROM curated.time_entries ORDER BY 1") == [
        ("11",), ("13",)]  # 12: hours out of range, 14: unknown employee
    return raw


def test_changes_of_every_kind_give_what_a_full_comparison_gives(wh, published):
    raw = published
    later = "2026-03-04T10:00:00Z"
    raw.load("psa_time_entries", [
        time_entry(11, "2026-03-02", 7.5, A, updated_at=later),   # changed
        time_entry(12, "2026-03-02", 3, A, updated_at=later),     # fixed: released
        time_entry(13, "2026-03-03", -1, B, updated_at=later),    # broken: quarantined
        time_entry(15, "2026-03-03", 2, B, updated_at=later)])    # new
    # nobody@x.com joins: entry 14 resolves to an employee without a new version of its own
    load_hris(raw, [hris_employee(1, A), hris_employee(2, B), hris_employee(3, "nobody@x.com")])
    run_transform(AS_OF)
    assert rows(wh, "SELECT time_entry_id, hours, employee_id FROM curated.time_entries "
                    "ORDER BY 1") == [("11", 7.5, "1"), ("12", 3, "1"), ("14", 4, "3"),
                                      ("15", 2, "2")]
    assert rows(wh, "SELECT count(*) FROM ops.curated_pending") == [(0,)]
    assert _full_sync_changes(wh) == {}


def test_a_quarantine_changed_outside_the_transform_is_published(wh, published):
    """An exception resolved by another check (the ingest resolves its rejects) releases
    the record at the next publish."""
    wh.execute("UPDATE ops.exceptions SET status = 'resolved', resolved_by = 'finance.lead' "
               "WHERE record_key = '12' AND status = 'open'")
    assert rows(wh, "SELECT entity, record_key FROM ops.curated_pending") == [
        ("time_entry", "12")]
    with wh.transaction():
        counts = curated.publish_curated(wh)
    assert counts["time_entry"] == {"deleted": 0, "inserted": 1}
    assert _full_sync_changes(wh) == {}


def test_only_pending_keys_are_compared_unless_a_full_rebuild_is_asked(wh, published):
    """A curated row changed behind the pipeline's back shows which path ran."""
    wh.execute("UPDATE curated.time_entries SET hours = 99 WHERE time_entry_id = '11'")
    with wh.transaction():
        assert curated.publish_curated(wh)["time_entry"] == {"deleted": 0, "inserted": 0}
    assert rows(wh, "SELECT hours FROM curated.time_entries WHERE time_entry_id = '11'") == [
        (99,)]
    with wh.transaction():
        assert curated.publish_curated(wh, full=True)["time_entry"] == {
            "deleted": 1, "inserted": 1}
    assert rows(wh, "SELECT hours FROM curated.time_entries WHERE time_entry_id = '11'") == [
        (8,)]


def test_a_migration_or_a_large_stage_marks_a_full_comparison(wh, published, monkeypatch):
    with wh.transaction(force_rollback=True):
        wh.execute("INSERT INTO ops.schema_migrations (version, checksum) "
                   "VALUES ('9999_test', 'x')")
        assert rows(wh, "SELECT entity, reason FROM ops.curated_full_sync") == [
            ("*", "migration 9999_test")]
    monkeypatch.setattr(curated, "KEYED_PUBLISH_MIN_ROWS", 0)
    published.load("psa_time_entries", [
        time_entry(21, "2026-03-02", 1, A), time_entry(22, "2026-03-02", 1, A)])
    with wh.transaction():
        curated.stage_all(wh)  # 2 new rows against 3 staged: more than a fifth
    assert ("time_entry", "2 raw rows staged at once") in rows(
        wh, "SELECT entity, reason FROM ops.curated_full_sync")
    assert rows(wh, "SELECT count(*) FROM ops.curated_pending WHERE entity = 'time_entry'") \
        == [(0,)]
    # staged through the scratch table the parallel workers fill: the same typed rows
    assert rows(wh, "SELECT time_entry_id, hours, employee_id FROM staging.time_entries "
                    "WHERE time_entry_id IN ('21', '22') ORDER BY 1") == [
        ("21", 1, "1"), ("22", 1, "1")]
    with wh.transaction():
        curated.publish_curated(wh)
    assert _full_sync_changes(wh) == {}


def test_a_publish_waits_for_a_quarantine_change_in_flight(wh, published, warehouse_target):
    """An ingest opens an error exception (a rejected copy) for a record that is already
    pending, while a publish runs: the publish waits for it and leaves the record out."""
    wh.execute("INSERT INTO ops.curated_pending VALUES ('time_entry', '11')")
    with psycopg.connect(warehouse_target.conninfo()) as ingest:
        ingest.execute(
            "INSERT INTO ops.exceptions (rule_id, severity, source_system, entity, record_key, "
            "details, first_seen_at, last_seen_at, status, first_as_of, last_as_of) VALUES "
            "('time_entry.ingest_rejected', 'error', 'psa', 'time_entry', '11', '{}', now(), "
            "now(), 'open', %s, %s)", (AS_OF, AS_OF))
        outcome = {}

        def publish() -> None:
            with wh.transaction():
                outcome["counts"] = curated.publish_curated(wh)

        publisher = threading.Thread(target=publish)
        publisher.start()
        time.sleep(1)
        assert publisher.is_alive()  # waiting for the ingest's transaction
        ingest.commit()
        publisher.join(timeout=60)
    assert outcome["counts"]["time_entry"] == {"deleted": 1, "inserted": 0}
    assert _full_sync_changes(wh) == {}
