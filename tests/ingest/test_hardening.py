"""Ingest on a bad day (issue #12): future-dated records, records that cannot be loaded
as they are, runs left `running` by a killed process, two runs of one stream at once.
A scripted PSA on loopback serves exactly the pages each test needs."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import psycopg
import pytest

from psops.connectors.engine import stream_lock_key
from psops.connectors.source_api_hook import SourceApiError
from psops.run_lock import RunLockTimeout
from tests.ingest.conftest import loaded_keys, run_stream, value
from tests.ingest.scripted_server import ScriptedServer

PROJECTS = "/v2/projects"


@pytest.fixture
def psa(monkeypatch):
    """A scripted PSA behind the `psa_api` connection."""
    server = ScriptedServer()
    monkeypatch.setenv("AIRFLOW_CONN_PSA_API", json.dumps({
        "conn_type": "http", "host": "127.0.0.1", "port": server.port, "schema": "http",
        "login": "acct-1", "password": "token"}))
    monkeypatch.setenv("PSOPS_HTTP_BACKOFF_BASE_SECONDS", "0.01")
    yield server
    server.close()


def project(pid, updated_at="2026-03-01T09:00:00Z", **fields) -> dict:
    return {"id": pid, "code": f"PRJ-{pid:05d}" if isinstance(pid, int) else "PRJ-X",
            "name": f"Project {pid}", "updated_at": updated_at, **fields}


def page(records: list, total: int | None = None) -> dict:
    return {"projects": records, "total_entries": len(records) if total is None else total,
            "links": {"next": None}}


def test_a_future_dated_record_never_moves_the_watermark_past_the_run_start(database_factory, psa):
    psa.add(PROJECTS, (200, {}, page([project(1), project(2, "2099-01-01T00:00:00Z")])))
    target = database_factory.create()
    result = run_stream(target, "psa", "projects")
    started = value(target, "SELECT started_at FROM ops.ingest_runs WHERE id = %s",
                    (result.run_id,))
    watermark = value(target, "SELECT watermark FROM ops.watermarks "
                              "WHERE system = 'psa' AND stream = 'projects'")
    assert sorted(loaded_keys(target, "psa", "projects")) == ["1", "2"]  # loaded all the same
    assert watermark == started - timedelta(minutes=10)  # the request's start - overlap
    # the next run asks for what changed since then, not since 2099
    run_stream(target, "psa", "projects")
    asked = [r["path"] for r in psa.requests if "per_page=1&" not in r["path"]][-1]
    assert "updated_since=2099" not in asked


def test_unloadable_records_are_rejected_and_the_rest_loads(database_factory, psa):
    psa.add(PROJECTS, (200, {}, page([
        project(1),
        project(2, name="bad\u0000name"),  # PostgreSQL jsonb cannot hold a NUL
        {"code": "PRJ-NOID", "updated_at": "2026-03-01T09:00:00Z"},  # no primary key
        "not an object",
        project(5),
    ])))
    target = database_factory.create()
    result = run_stream(target, "psa", "projects")

    assert sorted(loaded_keys(target, "psa", "projects")) == ["1", "5"]
    assert result.rejected == 3 and "3 rejected" in result.summary()
    assert value(target, "SELECT rejected FROM ops.ingest_runs WHERE id = %s",
                 (result.run_id,)) == 3
    with psycopg.connect(target.conninfo()) as conn:
        rejects = conn.execute(
            "SELECT id, record_key, reason, raw_text FROM ops.ingest_rejects "
            "WHERE ingest_run_id = %s AND system = 'psa' AND stream = 'projects' ORDER BY id",
            (result.run_id,)).fetchall()
        opened = conn.execute(
            "SELECT rule_id, severity, source_system, entity, record_key, details "
            "FROM ops.exceptions WHERE status = 'open' ORDER BY id").fetchall()
    assert [(key, reason.split(":")[0]) for _, key, reason, _ in rejects] == [
        ("2", "NUL character"), (None, "missing primary key"), (None, "not a JSON object")]
    assert "bad\\u0000name" in rejects[0][3]  # the text as received, the NUL escaped
    by_reject = {row[5]["reject_id"]: row for row in opened}  # traceable to its reject
    assert sorted(by_reject) == [reject_id for reject_id, *_ in rejects]
    for reject_id, key, reason, _ in rejects:
        rule_id, severity, system, entity, record_key, details = by_reject[reject_id]
        assert (rule_id, severity, system, entity) == (
            "project.ingest_rejected", "error", "psa", "project")
        assert details["reason"] == reason
        assert record_key == key or (key is None and record_key.startswith("unkeyed:"))

    # a later, clean version of record 2 resolves its exception; the others stay open
    psa.script[PROJECTS].clear()
    psa.add(PROJECTS, (200, {}, page([project(2, "2026-03-02T09:00:00Z", name="fixed")])))
    second = run_stream(target, "psa", "projects")
    with psycopg.connect(target.conninfo()) as conn:
        states = dict(conn.execute(
            "SELECT record_key, status || ' ' || coalesce(resolved_by, '') FROM ops.exceptions"))
    assert states["2"] == f"resolved psops_ingest_psa (ingest run {second.run_id})"
    assert sorted(s for k, s in states.items() if k != "2") == ["open ", "open "]


def test_a_run_left_running_is_marked_abandoned_by_the_next_run(database_factory, psa):
    psa.add(PROJECTS, (200, {}, page([project(1)])))
    target = database_factory.create()
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        dead = conn.execute(
            "INSERT INTO ops.ingest_runs (dag_id, dag_run_id, system, stream, mode, status) "
            "VALUES ('psops_ingest_psa', 'killed', 'psa', 'projects', 'incremental', "
            "'running') RETURNING id").fetchone()[0]
        other = conn.execute(
            "INSERT INTO ops.ingest_runs (dag_id, dag_run_id, system, stream, mode, status) "
            "VALUES ('psops_ingest_psa', 'elsewhere', 'psa', 'milestones', 'incremental', "
            "'running') RETURNING id").fetchone()[0]
    result = run_stream(target, "psa", "projects")
    with psycopg.connect(target.conninfo()) as conn:
        runs = dict((r[0], r[1:]) for r in conn.execute(
            "SELECT id, status, finished_at IS NOT NULL, error FROM ops.ingest_runs"))
    assert runs[dead] == ("abandoned", True, "abandoned: the run's process ended without "
                          f"recording an outcome; found by run {result.run_id}")
    assert runs[other] == ("running", False, None)  # another stream's run is not ours to judge
    assert runs[result.run_id][0] == "succeeded"


def _waiting_for_advisory_lock(target) -> bool:
    return bool(value(target, "SELECT count(*) FROM pg_locks "
                              "WHERE locktype = 'advisory' AND NOT granted"))


def test_two_runs_of_one_stream_serialise(database_factory, psa, monkeypatch):
    psa.add(PROJECTS, (200, {}, page([project(1)])))
    target = database_factory.create()
    outcome: dict = {}
    with psycopg.connect(target.conninfo(), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", stream_lock_key("psa", "projects"))
        waiter = threading.Thread(
            target=lambda: outcome.update(result=run_stream(target, "psa", "projects")))
        waiter.start()
        while not _waiting_for_advisory_lock(target):
            assert waiter.is_alive(), "the second run did not wait for the first"
            time.sleep(0.05)
        assert value(target, "SELECT count(*) FROM ops.ingest_runs") == 0  # nothing started
        holder.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))",
                       stream_lock_key("psa", "projects"))
        waiter.join()
    assert outcome["result"].new_versions == 1

    monkeypatch.setenv("PSOPS_RUN_LOCK_TIMEOUT_SECONDS", "0.2")
    with psycopg.connect(target.conninfo(), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", stream_lock_key("psa", "projects"))
        with pytest.raises(RunLockTimeout, match="PSA projects: another run .* holds the lock"):
            run_stream(target, "psa", "projects")


# -- a watermark already in the future when the cap is deployed ------------------------

def psa_filtering_by_updated_since(records: list[dict]):
    """A PSA answer that honours `updated_since` and `per_page=1` (the count request)."""
    def answer(query: dict) -> dict:
        since = query["updated_since"][0]
        matching = [r for r in records if r["updated_at"] >= since]
        shown = matching[:1] if query.get("per_page") == ["1"] else matching
        return page(shown, total=len(matching))
    return answer


def stored_history(target, runs: list[tuple[str, str | None, str | None]], watermark: str) -> list:
    """ops.ingest_runs rows (started_at, watermark_before, watermark_after) of PSA projects,
    and the stream's stored watermark (set by the last of them); returns their ids."""
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        ids = [conn.execute(
            "INSERT INTO ops.ingest_runs (dag_id, dag_run_id, system, stream, mode, status, "
            "started_at, finished_at, watermark_before, watermark_after) VALUES "
            "('psops_ingest_psa', %s, 'psa', 'projects', 'incremental', 'succeeded', "
            "%s, %s, %s, %s) RETURNING id",
            (f"before-{n}", started, started, before, after)).fetchone()[0]
            for n, (started, before, after) in enumerate(runs)]
        conn.execute("INSERT INTO ops.watermarks (system, stream, watermark, run_id) "
                     "VALUES ('psa', 'projects', %s, %s)", (watermark, ids[-1]))
    return ids


def asked_since(psa) -> list[str]:
    return [r["path"].split("updated_since=")[1].split("&")[0] for r in psa.requests]


def test_a_watermark_already_in_the_future_pages_from_the_last_trustworthy_one(
        database_factory, psa, caplog):
    psa.add(PROJECTS, (200, {}, psa_filtering_by_updated_since([
        project(1, "2026-02-20T09:00:00Z"),  # before the last trustworthy watermark
        project(2, "2026-03-05T09:00:00Z"),  # changed after the jump: never loaded so far
        project(3, "2099-01-01T00:00:00Z"),  # the record dated in the future
    ])))
    target = database_factory.create()
    _, jump, _ = stored_history(target, [
        ("2026-03-01T00:00:00Z", None, "2026-02-28T23:00:00Z"),
        ("2026-03-02T00:00:00Z", "2026-02-28T23:00:00Z", "2099-01-01T00:00:00Z"),  # the jump
        ("2026-03-03T00:00:00Z", "2099-01-01T00:00:00Z", "2099-01-01T00:00:00Z"),
    ], watermark="2099-01-01T00:00:00Z")

    result = run_stream(target, "psa", "projects")

    assert set(asked_since(psa)) == {"2026-02-28T22%3A50%3A00Z"}  # trustworthy - overlap
    assert sorted(loaded_keys(target, "psa", "projects")) == ["2", "3"]
    started = value(target, "SELECT started_at FROM ops.ingest_runs WHERE id = %s",
                    (result.run_id,))
    assert value(target, "SELECT watermark FROM ops.watermarks") == started - timedelta(minutes=10)
    assert f"ingest run {jump}" in caplog.text and "2099-01-01" in caplog.text


def test_a_future_watermark_with_no_run_that_explains_it_reads_again_from_the_epoch(
        database_factory, psa, caplog):
    psa.add(PROJECTS, (200, {}, psa_filtering_by_updated_since([
        project(1, "2026-02-20T09:00:00Z"), project(2, "2099-01-01T00:00:00Z")])))
    target = database_factory.create()
    stored_history(target, [("2026-03-03T00:00:00Z", None, None)],
                   watermark="2099-01-01T00:00:00Z")
    run_stream(target, "psa", "projects")
    assert set(asked_since(psa)) == {"1970-01-01T00%3A00%3A00Z"}
    assert sorted(loaded_keys(target, "psa", "projects")) == ["1", "2"]
    assert "from the epoch" in caplog.text


# -- records that are not valid JSON -----------------------------------------------------

def raw_page(bad_record: bytes) -> bytes:
    """A page whose second record is written by hand (not valid JSON for orjson)."""
    good = [json.dumps(project(1, budget=1.5)), json.dumps(project(3))]
    return (b'{"projects": [%s, %s, %s], "total_entries": 3, "links": {"next": null}}'
            % (good[0].encode(), bad_record, good[1].encode()))


@pytest.mark.parametrize(("bad_value", "reason"), [
    (b"NaN", "invalid JSON: the number NaN is not finite"),
    (b"-Infinity", "invalid JSON: the number -Infinity is not finite"),
    (b"1e400", "invalid JSON: the number 1e400 is not finite"),
    (b'"\\ud800"', "invalid JSON: a lone surrogate escape"),
])
def test_a_record_that_is_not_valid_json_is_rejected_and_the_rest_loads(
        database_factory, psa, bad_value, reason):
    bad = b'{"id": 2, "code": "PRJ-00002", "updated_at": "2026-03-01T09:00:00Z", "budget": %s}'
    psa.add(PROJECTS, (200, {}, raw_page(bad % bad_value)))
    target = database_factory.create()
    result = run_stream(target, "psa", "projects")

    assert sorted(loaded_keys(target, "psa", "projects")) == ["1", "3"]
    assert result.rejected == 1
    assert value(target, "SELECT payload->>'budget' FROM raw.psa_projects "
                         "WHERE record_id = '1'") == "1.5"
    with psycopg.connect(target.conninfo()) as conn:
        rejects = conn.execute("SELECT record_key, reason, raw_text FROM ops.ingest_rejects "
                               "WHERE ingest_run_id = %s", (result.run_id,)).fetchall()
        exceptions = conn.execute("SELECT rule_id, record_key FROM ops.exceptions "
                                  "WHERE status = 'open'").fetchall()
    assert len(rejects) == 1 and rejects[0][0] == "2" and rejects[0][1].startswith(reason)
    assert '"PRJ-00002"' in rejects[0][2]
    assert exceptions == [("project.ingest_rejected", "2")]


def test_a_page_that_is_not_json_at_all_fails_the_stream_naming_it(database_factory, psa):
    psa.add(PROJECTS, (200, {}, b'{"projects": [{"id": 1, '))
    target = database_factory.create()
    with pytest.raises(SourceApiError, match=r"PSA projects: the page /v2/projects\?.* is not JSON"):
        run_stream(target, "psa", "projects")


def test_a_raw_table_created_by_two_sessions_at_once_is_created_once(warehouse_target):
    """An ingest and a transform on a new warehouse both create raw.<table>: the second
    waits for the first's transaction and finds the table (no duplicate-key error from
    PostgreSQL's catalogue, which two CREATE TABLE IF NOT EXISTS at once would raise)."""
    from psops.connectors.raw_loader import ensure_raw_table

    table = f"race_{time.time_ns()}"
    outcome: dict = {}
    with psycopg.connect(warehouse_target.conninfo()) as first:
        ensure_raw_table(first, table)  # created, not yet committed

        def second_session():
            try:
                with psycopg.connect(warehouse_target.conninfo(), autocommit=True) as second:
                    ensure_raw_table(second, table)
                    outcome["exists"] = value(warehouse_target,
                                              "SELECT to_regclass(%s) IS NOT NULL",
                                              (f"raw.{table}",))
            except Exception as err:  # noqa: BLE001 - asserted below
                outcome["error"] = err

        thread = threading.Thread(target=second_session)
        thread.start()
        time.sleep(1)  # the second session is waiting for the first one's transaction
        assert thread.is_alive()
        first.commit()
        thread.join(timeout=30)
    with psycopg.connect(warehouse_target.conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP TABLE raw."{table}"')
    assert outcome == {"exists": True}
