"""The real DAGs through `bin/airflow dags test`: psops_writeback with lost answers on
every write (each intended create lands exactly once), and psops_approve_corrections
answered through the REST API of a real api-server, as the UI would (approve, reject).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections import Counter

import psycopg
import pytest
import requests

from tests.conftest import BIN_AIRFLOW, run_bin_airflow
from tests.writeback.helpers import (
    AS_OF,
    applied_creates,
    outbox_rows,
    parked_approvals,
    plan_writes,
    records_in_sandbox,
)

pytestmark = [pytest.mark.slow, pytest.mark.db]
FINANCE_USER = "finance.lead"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def stack(wb_sandbox, wb_template, database_factory, tmp_path_factory):
    """A warehouse copy, the sandbox reset, an Airflow home and a running api-server."""
    home = tmp_path_factory.mktemp("wb_airflow_home")
    target = database_factory.create(template=wb_template.dbname)
    wb_sandbox.reset_data()
    wb_sandbox.set_faults(reset=True)
    port = _free_port()
    env = {**wb_sandbox.conn_env(), "AIRFLOW_CONN_WAREHOUSE": target.airflow_uri(),
           "PSOPS_HTTP_BACKOFF_BASE_SECONDS": "0.01",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{FINANCE_USER}:admin",
           "PSOPS_FINANCE_USERS": FINANCE_USER,
           "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"}
    run_bin_airflow(["dags", "list"], home, env)  # migrate the metadata DB once
    log = open(home / "api-server.log", "w")  # noqa: SIM115 - closed at teardown
    server = subprocess.Popen(
        [str(BIN_AIRFLOW), "api-server", "--port", str(port), "--host", "127.0.0.1"],
        env={**os.environ, "AIRFLOW_HOME": str(home), **env}, stdout=log,
        stderr=subprocess.STDOUT, cwd="/", start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{base}/api/v2/monitor/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None and time.monotonic() < deadline, \
                (home / "api-server.log").read_text()[-3000:]
            time.sleep(1)
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        token = requests.post(f"{base}/auth/token", json={
            "username": FINANCE_USER, "password": passwords[FINANCE_USER]}, timeout=10)
        token.raise_for_status()
        yield {"home": home, "env": env, "target": target, "sandbox": wb_sandbox, "base": base,
               "headers": {"Authorization": f"Bearer {token.json()['access_token']}"}}
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        log.close()
        wb_sandbox.set_faults(reset=True)


def _ok(result) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    return output


def test_writeback_dag_with_lost_answers_creates_each_record_once(stack):
    sandbox, target = stack["sandbox"], stack["target"]
    sandbox.set_faults(lost_response_rate=1.0, systems=["psa", "erp", "crm"])
    output = _ok(run_bin_airflow(["dags", "test", "psops_writeback", AS_OF.isoformat()],
                                 stack["home"], stack["env"]))
    sandbox.set_faults(reset=True)
    assert "psops_writeback 2026-03-31: created 3 projects, 4 ERP jobs" in output
    creates = applied_creates(sandbox)
    expected = {("psa_project", "9052"), ("psa_project", "9053"), ("psa_project", "9057"),
                ("erp_job", "PRJ-00052"), ("erp_job", "PRJ-00053"), ("erp_job", "PRJ-00054"),
                ("erp_job", "PRJ-00018")}
    assert set(creates) == expected and all(n == 1 for n in creates.values()), creates
    assert all(w["lost"] for w in sandbox.writes() if w["system"] in ("psa", "erp", "crm"))
    held = records_in_sandbox(sandbox)
    assert all(held[k] == 1 for k in expected)
    linked = [w for w in sandbox.writes("crm") if w["method"] == "PATCH"]
    assert len(linked) == 3
    rows = outbox_rows(target)
    assert {r["status"] for k, r in rows.items() if r["purpose"] == "deal_setup"} == {"confirmed"}
    assert [w for w in sandbox.writes("webhook") if w["status"] == 200]
    # Run again: nothing new is written to any system.
    before = len(sandbox.writes())
    _ok(run_bin_airflow(["dags", "test", "psops_writeback", AS_OF.isoformat()],
                        stack["home"], stack["env"]))
    assert len([w for w in sandbox.writes()[before:] if w["system"] != "webhook"]) == 0
    assert applied_creates(sandbox) == creates


def _answer(stack, run_marker: str, option: str, proc, params=None) -> dict:
    """`run_marker`: the batch id, which the request's body names."""
    """Wait for the approval request of the `dags test` run, answer it like the UI."""
    base, headers = stack["base"], stack["headers"]
    deadline = time.monotonic() + 180
    while True:
        listing = requests.get(f"{base}/api/v2/dags/psops_approve_corrections/dagRuns/~/hitlDetails",
                               headers=headers, timeout=10)
        listing.raise_for_status()
        waiting = parked_approvals(listing.json(), run_marker)
        if waiting:
            break
        assert proc.poll() is None, proc.communicate()[0][-5000:]
        assert time.monotonic() < deadline, listing.json()
        time.sleep(1)
    detail = waiting[0]
    run_id = detail["task_instance"]["dag_run_id"]
    answer = requests.patch(
        f"{base}/api/v2/dags/psops_approve_corrections/dagRuns/{run_id}/taskInstances/"
        "finance_approval/-1/hitlDetails",
        headers=headers, json={"chosen_options": [option], "params_input": params or {}},
        timeout=10)
    assert answer.status_code == 200, answer.text
    return detail


def _run_approval(stack, date: str, batch_id: str, option: str, params=None):
    proc = subprocess.Popen(
        [str(BIN_AIRFLOW), "dags", "test", "psops_approve_corrections", date,
         "--conf", json.dumps({"batch_id": batch_id})],
        env={**os.environ, "AIRFLOW_HOME": str(stack["home"]), "PSOPS_RETRY_DELAY_SECONDS": "1",
             **stack["env"]}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd="/")
    try:
        detail = _answer(stack, batch_id, option, proc, params)
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-5000:]
    return detail, output


def test_finance_approves_a_large_correction_in_the_ui(stack):
    """Depends on the write-back run above (it held PRJ-00006/12/17 as one batch)."""
    sandbox, target = stack["sandbox"], stack["target"]
    rows = outbox_rows(target)
    batch_id = next(r["batch_id"] for r in rows.values() if r["status"] == "awaiting_approval")
    sandbox.set_faults(lost_response_rate=1.0, systems=["psa", "erp"])
    detail, output = _run_approval(stack, "2026-03-31", batch_id, "Approve")
    sandbox.set_faults(reset=True)
    assert "PRJ-00006, PRJ-00012, PRJ-00017" in detail["subject"]
    assert "| PRJ-00006 | new ERP billing line: create ERP billing line 10,000.00 USD" in detail["body"]
    assert detail["options"] == ["Approve", "Reject"] and detail["defaults"] == ["Reject"]
    assert f"approved by finance: {FINANCE_USER}" in output
    rows = outbox_rows(target)
    batch = [r for r in rows.values() if r["batch_id"] == batch_id]
    assert {r["status"] for r in batch} == {"confirmed"}
    assert all(r["decided_by"].startswith(f"finance: {FINANCE_USER}") for r in batch)
    creates = applied_creates(sandbox)
    assert creates[("erp_billing_line", "8030")] == 1 and creates[("erp_billing_line", "8066")] == 1
    assert creates[("erp_job", "PRJ-00012")] == 1
    assert all(n == 1 for n in creates.values()), creates
    with psycopg.connect(target.conninfo()) as conn:
        log = Counter(decision for (decision,) in conn.execute(
            "SELECT decision FROM ops.correction_log WHERE batch_id = %s", (batch_id,)))
    assert log == {"held_for_approval": len(batch), "approved": len(batch)}


def test_finance_rejects_and_nothing_is_written(stack, database_factory, wb_template):
    sandbox = stack["sandbox"]
    target = database_factory.create(template=wb_template.dbname)  # fresh corrections
    os.environ.update(sandbox.conn_env())
    batch_id = plan_writes(target, "plan-only")["batch_id"]
    assert batch_id
    before = len(sandbox.writes())
    env = {**stack["env"], "AIRFLOW_CONN_WAREHOUSE": target.airflow_uri()}
    detail, output = _run_approval({**stack, "env": env}, "2026-04-01", batch_id, "Reject")
    assert f"rejected by finance: {FINANCE_USER}" in output
    assert len(sandbox.writes()) == before
    rows = outbox_rows(target)
    batch = [r for r in rows.values() if r["batch_id"] == batch_id]
    assert batch and {r["status"] for r in batch} == {"rejected"}
