"""The soak in small (`make soak` runs 50 cycles): 3 cycles of source changes -> ingest ->
transform -> write-back under random faults, one task killed with SIGKILL and tried
again, every invariant checked against the sandbox's truth after each cycle."""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

REPO_ROOT = Path(__file__).resolve().parents[1]


def _table_number(output: str, row: str) -> int:
    match = re.search(rf"^{row}\s+(\d+)", output, re.M)
    assert match, f"no '{row}' row in the soak's table:\n{output}"
    return int(match.group(1))


@pytest.mark.slow
def test_three_cycles_with_a_kill_keep_every_invariant(pg_server, tmp_path):
    env = {**os.environ, "AIRFLOW_CONN_WAREHOUSE": pg_server.airflow_uri(),
           "AIRFLOW_HOME": str(tmp_path / "airflow_home")}
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "soak.py"), "--cycles", "3",
         "--kills", "1", "--seed", "3", "--log-dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert _table_number(done.stdout, "kills") >= 1, done.stdout
    assert _table_number(done.stdout, "records checked") > 0, done.stdout
    assert _table_number(done.stdout, "violations") == 0, done.stdout


def test_a_create_applied_twice_is_a_violation():
    from benchmarks.soak_checks import check_writes

    job = {"system": "erp", "method": "POST", "path": "/services/rest/record/v1/job",
           "status": 204, "body": {"externalId": "7052", "entityId": "PRJ-00052"}}
    patch = {"system": "psa", "method": "PATCH", "path": "/v2/time_entries/1", "status": 200,
             "body": {"billable_rate": 315.0}}
    refused = {**job, "status": 503}  # a fault answer: the write was not applied
    answer_lost = {**job, "lost": "504"}  # applied, the answer lost
    assert check_writes([refused, job, patch, patch]) == []
    assert check_writes([job, answer_lost, patch]) == [
        "write applied 2 times: erp job externalId 7052"]


# -- planned kills: a miss is made up, a shortfall is a violation ----------------------

@pytest.fixture
def soak(monkeypatch):
    """benchmarks/soak.py as the soak imports it, with one task that does nothing and
    invariant checks that find nothing."""
    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    import soak

    monkeypatch.setitem(soak.TASKS, "noop", lambda: {})
    monkeypatch.setattr(soak, "check_invariants", lambda truth, writes: (1, []))
    return soak


def _scripted_soak(soak, tmp_path, cycles: int, kills: int, plan: dict[int, str],
                   missing_cycles: set[int]):
    """A Soak without sandbox or warehouse: two tasks per kill point in each cycle (each
    try still a child process); a kill misses in `missing_cycles`, lands elsewhere."""

    class ScriptedSoak(soak.Soak):
        def plan_kills(self, cycles_: list[int]) -> dict[int, str]:
            return plan

        def cycle(self, cycle: int) -> None:
            self.now = cycle
            super().cycle(cycle)

        def _post(self, path, body):
            return {}

        def _get(self, path):
            return {"per_key": {}} if path == "/_sandbox/truth" else []

        def set_faults(self, settings):
            pass

        def count_faults(self):
            pass

        def ingest(self, cycle):
            for name in ("load_a", "load_b"):
                self.run_task(cycle, name, "noop", "mid_copy")

        def transform(self, cycle):
            pass

        def writeback(self, cycle):
            for name in ("set_up_projects", "apply_corrections"):
                self.run_task(cycle, name, "noop", "mid_write")

        def _kill_when(self, process, point, writes_before):
            process.join()  # the child finished: pretend the kill landed when it should
            return self.now not in missing_cycles

    args = argparse.Namespace(cycles=cycles, kills=kills, seed=1)
    scripted = ScriptedSoak(args, "http://127.0.0.1:9", str(tmp_path))
    scripted.run()
    return scripted


def test_a_missed_kill_is_made_up_in_the_next_cycle(soak, tmp_path):
    # Random(1).sample([1, 2], 1) == [1]: without plan_kills the soak plans cycle 1 too
    scripted = _scripted_soak(soak, tmp_path, cycles=2, kills=1, plan={1: "mid_copy"},
                              missing_cycles={1})
    assert scripted.kills == {"mid_copy": 1}
    assert scripted.kills_missed == 2  # both eligible tasks of cycle 1
    assert scripted.violations == []


def test_fewer_kills_than_asked_is_a_violation(soak, tmp_path):
    scripted = _scripted_soak(soak, tmp_path, cycles=3, kills=3,
                              plan={1: "mid_copy", 2: "mid_write", 3: "mid_copy"},
                              missing_cycles={1})
    # cycle 2 makes up cycle 1's mid_copy, cycle 3 does cycle 2's mid_write: one short
    assert scripted.kills == {"mid_copy": 1, "mid_write": 1}
    assert scripted.violations == [
        "2 kills done, 1 fewer than --kills 3 (planned kills missed and not made up: "
        "mid_copy)"]


# -- the raw check and the traceability check, on a real warehouse --------------------

def _run(conn, system: str, stream: str) -> int:
    return conn.execute(
        "INSERT INTO ops.ingest_runs (dag_id, dag_run_id, system, stream, mode, status) "
        "VALUES ('soak_test', 'manual', %s, %s, 'incremental', 'succeeded') RETURNING id",
        (system, stream)).fetchone()[0]


def _raw(conn, raw_table: str, record_id: str, run_id: int, updated: str | None = None,
         payload: dict | None = None) -> None:
    from psycopg import sql

    from psops.connectors.raw_loader import raw_table_ddl

    conn.execute(raw_table_ddl(raw_table))
    conn.execute(sql.SQL("INSERT INTO {} (record_id, source_updated_at, payload, run_id) "
                         "VALUES (%s, %s, %s, %s)").format(sql.Identifier("raw", raw_table)),
                 (record_id, updated, Jsonb(payload or {}), run_id))


def _reject(conn, run_id: int, system: str, stream: str, key: str | None,
            text: str = "{}") -> int:
    return conn.execute(
        "INSERT INTO ops.ingest_rejects (ingest_run_id, system, stream, record_key, reason, "
        "raw_text) VALUES (%s, %s, %s, %s, 'a NUL character', %s) RETURNING id",
        (run_id, system, stream, key, text)).fetchone()[0]


@pytest.fixture
def fresh_wh(database_factory, monkeypatch):
    target = database_factory.create()
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", target.airflow_uri())
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        yield conn


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_only_a_record_whose_latest_sighting_was_rejected_is_excused_from_raw(fresh_wh):
    from benchmarks.soak_checks import check_raw_and_curated

    first, bad, good = (_run(fresh_wh, "psa", "milestones") for _ in range(3))
    # 7: rejected once, loaded cleanly after; its latest version (later) never arrived
    _raw(fresh_wh, "psa_milestones", "7", first, "2026-03-01T00:00:00+00:00")
    _reject(fresh_wh, bad, "psa", "milestones", "7")
    _raw(fresh_wh, "psa_milestones", "7", good, "2026-03-03T00:00:00+00:00")
    # 8: loaded, then its latest version rejected
    _raw(fresh_wh, "psa_milestones", "8", first, "2026-03-01T00:00:00+00:00")
    _reject(fresh_wh, good, "psa", "milestones", "8")
    truth = {"versions": {"psa/milestones": {"7": _ms("2026-03-04T00:00:00+00:00"),
                                             "8": _ms("2026-03-05T00:00:00+00:00")}},
             "snapshots": {}}
    checked, problems = check_raw_and_curated(fresh_wh, truth)
    assert checked == 2
    assert problems == [
        "raw: 1 latest versions of psa/milestones missing from raw.psa_milestones: ids 7",
        "curated: 1 records of psa/milestones not in curated.milestones at their latest "
        "version (not quarantined): ids 7"]


def _exception(conn, rule_id: str, system: str, entity: str, key: str,
               details: dict | None = None) -> None:
    conn.execute(
        "INSERT INTO ops.exceptions (rule_id, severity, source_system, entity, record_key, "
        "details) VALUES (%s, 'error', %s, %s, %s, %s)",
        (rule_id, system, entity, key, Jsonb(details or {})))


def test_an_exception_traces_only_to_its_own_entitys_record_or_reject(fresh_wh):
    from benchmarks.soak_checks import check_exceptions_traceable

    milestones, deals, whos_out, time_off = (
        _run(fresh_wh, *stream) for stream in (("psa", "milestones"), ("crm", "deals"),
                                               ("hris", "whos_out"),
                                               ("hris", "time_off_requests")))
    _raw(fresh_wh, "psa_milestones", "101", milestones)
    _raw(fresh_wh, "crm_deals", "9001", deals)
    _raw(fresh_wh, "hris_whos_out", "holiday:12", whos_out)
    _raw(fresh_wh, "hris_time_off_requests", "77", time_off,
         payload={"dates": {"2026-01-02": "8"}})
    unkeyed_text = '{"name": "no id"}'
    _reject(fresh_wh, milestones, "psa", "milestones", None, unkeyed_text)
    reject_id = _reject(fresh_wh, milestones, "psa", "milestones", "550")
    _reject(fresh_wh, deals, "crm", "deals", "660")
    unkeyed = "unkeyed:" + hashlib.md5(unkeyed_text.encode()).hexdigest()[:16]
    for entity, key, details in [
            ("milestone", "101", None), ("milestone", unkeyed, None),
            ("milestone", "550", None), ("milestone", "x", {"reject_id": str(reject_id)}),
            ("holiday", "holiday:12", None), ("time_off_day", "77:2026-01-02", None),
            # a key whose last part is a raw id, a day the request does not have,
            # a reject of another stream, a reject id of another stream
            ("milestone", "x:101", None), ("time_off_day", "77:2026-01-05", None),
            ("milestone", "660", None), ("holiday", "timeOff:12", None)]:
        _exception(fresh_wh, f"{entity}.some_rule", "psa", entity, key, details)
    _exception(fresh_wh, "deal.setup_invalid", "crm", "deal", "9001")
    _exception(fresh_wh, "deal.setup_invalid", "crm", "deal", "9002")
    assert sorted(check_exceptions_traceable(fresh_wh)) == sorted([
        "2 open exceptions of entity milestone name no raw or rejected record: 660, x:101",
        "1 open exceptions of entity time_off_day name no raw or rejected record: "
        "77:2026-01-05",
        "1 open exceptions of entity holiday name no raw or rejected record: timeOff:12",
        "1 open exceptions of entity deal name no raw or rejected record: 9002"])
