"""The real chain through `bin/airflow dags test`: the four ingest DAGs against the sandbox
with faults switched on, then psops_transform, into one test warehouse.

Checks the "done when" of ingestion (every DAG green, exactly the sandbox's records by
count and by key) and that the marts show the situations the sandbox planted (data
nobody tuned the SQL for), and that a second transform run for the same date gives the
same answer.
"""

from __future__ import annotations

import psycopg
import pytest

from psops.catalogue import system_names
from psops.connectors.spec import load_spec
from sandbox.server import start_sandbox
from sandbox.soak_data import INCREMENTAL as SANDBOX_TABLES  # raw stream -> sandbox table
from tests.conftest import run_bin_airflow

AS_OF = "2026-03-31"
FAULTS = {"throttle_rate": 0.05, "error_rate": 0.05, "retry_after": 1, "token_lifetime": 3}


@pytest.fixture(scope="module")
def pipeline(database_factory, airflow_home):
    """Sandbox with faults on → ingest ×4 → transform, once for the module."""
    target = database_factory.create()
    with start_sandbox(seed=42, today=AS_OF, port=0, faults=FAULTS) as sandbox:
        env = {**sandbox.conn_env(), "AIRFLOW_CONN_WAREHOUSE": target.airflow_uri()}
        results = {}
        for dag_id in ("psops_ingest_crm", "psops_ingest_psa", "psops_ingest_erp",
                       "psops_ingest_hris", "psops_transform"):
            results[dag_id] = run_bin_airflow(["dags", "test", dag_id, AS_OF], airflow_home, env)
        stats = sandbox.stats()
        yield {"target": target, "sandbox": sandbox, "results": results, "stats": stats,
               "env": env, "airflow_home": airflow_home}


def _ok(result) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "state=success" in output or "DagRun Finished" in output, output[-2000:]
    return output


def _sandbox_keys(sandbox, system, stream) -> set[str]:
    if (system, stream) == ("psa", "time_entries"):
        return {str(i) for i in sandbox.dataset.time_entries.ids().tolist()}
    if (system, stream) == ("hris", "employees"):
        return {str(e["id"]) for e in sandbox.dataset.employees}
    source_system, table = SANDBOX_TABLES[(system, stream)]
    return {str(r["id"]) for r in getattr(sandbox.dataset, source_system)[table].all()}


@pytest.mark.slow
@pytest.mark.parametrize("system", system_names())
def test_ingest_dag_lands_exactly_the_sandbox_records(pipeline, system):
    output = _ok(pipeline["results"][f"psops_ingest_{system}"])
    assert f"{system.upper()} ingest complete" in output
    with psycopg.connect(pipeline["target"].conninfo()) as conn:
        for stream in load_spec(system).streams:
            if stream.name in ("time_off_requests", "whos_out"):
                count = conn.execute(f"SELECT count(*) FROM {stream.table}").fetchone()[0]
                assert count > 0
                continue
            keys = {r[0] for r in conn.execute(f"SELECT record_id FROM {stream.table}")}
            rows = conn.execute(f"SELECT count(*) FROM {stream.table}").fetchone()[0]
            expected = _sandbox_keys(pipeline["sandbox"], system, stream.name)
            assert keys == expected, (stream.name, len(keys), len(expected))
            if stream.name != "time_entries":  # time entries also carry duplicated anomalies
                assert rows == len(expected), stream.name
        statuses = conn.execute(
            "SELECT DISTINCT status FROM ops.ingest_runs WHERE system = %s", (system,)).fetchall()
    assert statuses == [("succeeded",)]


@pytest.mark.slow
def test_faults_really_happened_and_were_absorbed(pipeline):
    faults = {system: sum(pipeline["stats"][system]["faults"].values())
              for system in system_names()}
    assert sum(faults.values()) > 0, faults
    with psycopg.connect(pipeline["target"].conninfo()) as conn:
        retries, throttled = conn.execute(
            "SELECT sum(retries), sum(throttled) FROM ops.ingest_runs").fetchone()
    assert retries > 0 and throttled >= 0


@pytest.mark.slow
def test_transform_publishes_the_planted_situations(pipeline):
    output = _ok(pipeline["results"]["psops_transform"])
    assert "Billing readiness" in output or "ready" in output
    with psycopg.connect(pipeline["target"].conninfo()) as conn:
        readiness = {
            (code, item): (status, reasons) for code, item, status, reasons in conn.execute(
                "SELECT project_code, item_id, status, blocking_reasons "
                "FROM marts.billing_readiness WHERE as_of = %s", (AS_OF,))}
        quarantined = {r[0] for r in conn.execute(
            "SELECT record_key FROM ops.exceptions WHERE status = 'open' AND severity = 'error' "
            "AND entity = 'time_entry'")}
        curated_ids = {r[0] for r in conn.execute(
            "SELECT time_entry_id FROM curated.time_entries WHERE time_entry_id = ANY(%s)",
            (["10064645", "10064646", "10064647", "10064648", "10064650"],))}
    assert readiness[("PRJ-00002", "8004")] == ("ready", [])
    assert readiness[("PRJ-00003", "8011")][1] == ["MILESTONE_NOT_ACCEPTED"]
    assert readiness[("PRJ-00004", "8017")][1] == ["MISSING_EVIDENCE"]
    assert readiness[("PRJ-00005", "8023")][1] == ["NO_ACTIVE_PROJECT_CODE"]
    assert readiness[("PRJ-00006", "8030")][1] == ["NO_BILLING_SCHEDULE"]
    assert readiness[("PRJ-00007", "8036")][1] == ["BILLING_AMOUNT_MISMATCH"]
    assert readiness[("PRJ-00008", "8043")][1] == ["PENDING_CHANGE_REQUEST"]
    assert readiness[("PRJ-00009", "8049")][1] == ["UNAPPROVED_PURCHASE_ORDER"]
    assert readiness[("PRJ-00012", "8066")][1] == ["NO_ACTIVE_PROJECT_CODE", "NO_BILLING_SCHEDULE"]
    assert readiness[("PRJ-00013", "2026-02")] == ("ready", [])
    assert "UNAPPROVED_TIME" in readiness[("PRJ-00014", "2026-02")][1]
    assert "UNAPPROVED_EXPENSES" in readiness[("PRJ-00015", "2026-02")][1]
    assert "MISSING_RECEIPT" in readiness[("PRJ-00016", "2026-02")][1]
    assert "RATE_MISMATCH" in readiness[("PRJ-00017", "2026-02")][1]
    assert readiness[("PRJ-00020", "2026-01")][0] == "ready"  # its only invoice was voided
    assert {"10064645", "10064646", "10064647", "10064648", "10064650"} <= quarantined
    assert curated_ids == set()


@pytest.mark.slow
def test_second_transform_run_for_the_same_date_gives_the_same_answer(pipeline):
    query = ("SELECT project_code, item_id, status, amount, blocking_reasons "
             "FROM marts.billing_readiness WHERE as_of = %s ORDER BY 1, 2")
    with psycopg.connect(pipeline["target"].conninfo()) as conn:
        before = conn.execute(query, (AS_OF,)).fetchall()
        kpis_before = conn.execute("SELECT kpi, value FROM marts.process_kpis WHERE as_of = %s "
                                   "AND kpi <> 'integration_error_rate' ORDER BY kpi",
                                   (AS_OF,)).fetchall()
    rerun = run_bin_airflow(["dags", "test", "psops_transform", AS_OF],
                            pipeline["airflow_home"], pipeline["env"])
    _ok(rerun)
    with psycopg.connect(pipeline["target"].conninfo()) as conn:
        assert conn.execute(query, (AS_OF,)).fetchall() == before
        assert conn.execute("SELECT kpi, value FROM marts.process_kpis WHERE as_of = %s "
                            "AND kpi <> 'integration_error_rate' ORDER BY kpi",
                            (AS_OF,)).fetchall() == kpis_before
    assert len(before) > 50
