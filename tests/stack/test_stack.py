"""The whole path as users run it: `bin/stack up` with the CeleryExecutor on Redis (a
Celery worker executes every task), the sandbox behind connections set through the REST
API, ingest runs triggered through the REST API, psops_transform and psops_writeback
started by Asset events, a deadline alert fired by the scheduler and the triggerer, finance
approving through the REST API, the finance pages and a task log through the api-server,
and one failure message for a failing task. (Over 300 lines: one stack start serves
every check, which must share this module.)

Needs a Redis (PSOPS_TEST_REDIS_URL, default redis://127.0.0.1:6379/0): skipped with the
reason when none answers (.ci/run makes sure one does). Every process the stack started
is stopped at the end, and the test checks that none is left.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import namedtuple_row, scalar_row

from psops.catalogue import raw_asset_uris, system_names
from psops.settings import MARTS_ASSET_URI, TEST_REDIS_URL
from tests.conftest import REPO_ROOT
from tests.writeback.helpers import parked_approvals

sys.path.insert(0, str(REPO_ROOT / "bin"))
import psops_demo  # noqa: E402
from psops_rest import AirflowApi, ApiError  # noqa: E402
from psops_stack_config import read_env_file  # noqa: E402

pytestmark = [pytest.mark.stack, pytest.mark.slow]

REDIS_URL = TEST_REDIS_URL.text()
INGESTS = [f"psops_ingest_{system}" for system in system_names()]
RUN_TIMEOUT_S = 300


def redis_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Stack:
    def __init__(self, home: Path, env: dict[str, str], warehouse, sandbox):
        self.home = home
        self.env = env
        self.warehouse = warehouse
        self.sandbox = sandbox
        self.settings = read_env_file(home / "stack" / "env")
        self.url = self.settings["AIRFLOW__API__BASE_URL"]
        self.passwords = json.loads((home / "stack" / "passwords.json").read_text())

    def api(self, user: str) -> AirflowApi:
        return AirflowApi(self.url, user, self.passwords[user])

    def bin_stack(self, *args: str, timeout: int = 400) -> subprocess.CompletedProcess:
        return subprocess.run([str(REPO_ROOT / "bin" / "stack"), *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, cwd="/")


def stack_processes(home: Path) -> list[int]:
    """Processes whose environment names this Airflow home (what `down` must stop)."""
    marker = f"AIRFLOW_HOME={home}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return [pid for pid in found if pid != os.getpid()]


@pytest.fixture(scope="module")
def stack(pg_server, database_factory, tmp_path_factory):
    if not redis_answers(REDIS_URL):
        pytest.skip(f"no Redis answers at {REDIS_URL} (set PSOPS_TEST_REDIS_URL); "
                    "the stack test needs one for the CeleryExecutor")
    from sandbox.server import start_sandbox

    warehouse = database_factory.create()
    home = tmp_path_factory.mktemp("stack_home")
    metadata_db = f"psops_stack_meta_{os.getpid()}_{secrets.token_hex(3)}"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONN_WAREHOUSE": warehouse.airflow_uri(),
        "PSOPS_METADATA_DB": metadata_db,
        "PSOPS_STACK_PORT": "0",
        "PSOPS_CELERY_BROKER": REDIS_URL,
        "PSOPS_CELERY_QUEUE": f"psops_test_{os.getpid()}_{secrets.token_hex(3)}",
        "PSOPS_CELERY_CONCURRENCY": "3",
        # Ingests run when the test triggers them, not on the daily schedule.
        "PSOPS_INGEST_SCHEDULE": "none",
        "PSOPS_RETRY_DELAY_SECONDS": "1",
        "PSOPS_RETRIES": "0",
        # The transform takes longer than this: its deadline alert must fire.
        "PSOPS_MARTS_DEADLINE_MINUTES": "0.1",
    }
    today = datetime.now(UTC).date()
    with start_sandbox(seed=42, port=0, today=today) as sandbox:
        up = subprocess.run([str(REPO_ROOT / "bin" / "stack"), "up"], env=env,
                            capture_output=True, text=True, timeout=400, cwd="/")
        try:
            assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
            running = Stack(home, env, warehouse, sandbox)
            yield running
        finally:
            down = subprocess.run([str(REPO_ROOT / "bin" / "stack"), "down"], env=env,
                                  capture_output=True, text=True, timeout=120, cwd="/")
            left = stack_processes(home)
            with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(metadata_db)))
            assert down.returncode == 0, down.stderr
            assert left == [], f"processes left behind by `bin/stack down`: {left}"


def wait_for(description: str, check, timeout: float = RUN_TIMEOUT_S, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s: {description}"
        time.sleep(every)


def runs(api: AirflowApi, dag_id: str) -> list[dict]:
    return api.get(f"/dags/{dag_id}/dagRuns", limit=100, order_by="-run_after")["dag_runs"]


def finished_run(api: AirflowApi, dag_id: str, run_id: str) -> dict:
    def finished():
        run = api.get(f"/dags/{dag_id}/dagRuns/{run_id}")
        return run if run["state"] in ("success", "failed") else None

    return wait_for(f"{dag_id} {run_id} finishes", finished)


def asset_run_events(api: AirflowApi, dag_id: str) -> set[str]:
    """Waits for an Asset-triggered run of `dag_id` to succeed; the URIs that started it."""
    run = wait_for(f"an Asset-triggered {dag_id} run", lambda: [
        r for r in runs(api, dag_id) if r["run_type"] == "asset_triggered"])[0]
    run = finished_run(api, dag_id, run["dag_run_id"])
    assert run["state"] == "success", run
    events = api.get(f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")
    return {event["uri"].rstrip("/") for event in events["asset_events"]}


def trigger(api: AirflowApi, dag_id: str) -> str:
    return api.post(f"/dags/{dag_id}/dagRuns", {"logical_date": None})["dag_run_id"]


def test_stack_runs_on_celery(stack):
    status = stack.bin_stack("status", timeout=60)
    assert "psops stack: healthy" in status.stdout, status.stdout
    assert re.search(r"executor +CeleryExecutor", status.stdout), status.stdout
    assert re.search(r"celery-worker +pid \d+", status.stdout), status.stdout
    health = stack.api("admin")._send("GET", "/api/v2/monitor/health", token=None)
    assert {part: health[part]["status"] for part in ("metadatabase", "scheduler",
                                                      "triggerer", "dag_processor")} == {
        "metadatabase": "healthy", "scheduler": "healthy", "triggerer": "healthy",
        "dag_processor": "healthy"}


def python_path_of(pid: int) -> list[Path]:
    """The PYTHONPATH entries of a running process, resolved against its working directory."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    values = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
    if "PYTHONPATH" not in values:
        return []
    cwd = Path(f"/proc/{pid}/cwd").resolve()
    return [(cwd / entry).resolve() for entry in values["PYTHONPATH"].split(":")]


def test_no_stack_process_has_the_sandbox_on_its_path(stack):
    """The Airflow processes get the product's code (plugins/), never a folder holding the
    sandbox package (the repository root)."""
    checked = 0
    for pid in stack_processes(stack.home):
        try:
            path = python_path_of(pid)
        except OSError:  # ended meanwhile
            continue
        checked += 1
        assert REPO_ROOT / "plugins" in path, (pid, path)
        assert [entry for entry in path if (entry / "sandbox").exists()] == [], (pid, path)
    assert checked >= 4


def unpause_the_pipeline(stack: Stack, admin: AirflowApi) -> None:
    """What `make demo` does: connections at the sandbox, every DAG parsed and unpaused."""
    psops_demo.register_connections(admin, {
        key.removeprefix("AIRFLOW_CONN_").lower(): value
        for key, value in stack.sandbox.conn_env().items()})
    psops_demo.wait_for_dags(admin, INGESTS + psops_demo.ASSET_DAGS)
    for dag_id in INGESTS + psops_demo.ASSET_DAGS:
        admin.patch(f"/dags/{dag_id}", {"is_paused": False})


def held_batch(stack: Stack) -> str:
    """Today's marts are published and a batch of corrections waits for finance: its id."""
    with psycopg.connect(stack.warehouse.conninfo(), row_factory=scalar_row) as conn:
        billing_rows = conn.execute("SELECT count(*) FROM marts.billing_readiness "
                                    "WHERE as_of = %s", (datetime.now(UTC).date(),)).fetchone()
        batch_id = conn.execute("SELECT batch_id FROM ops.approval_batches "
                                "WHERE status = 'awaiting_approval' ORDER BY batch_id DESC "
                                "LIMIT 1").fetchone()
    assert billing_rows > 0
    return batch_id


def finance_approves(stack: Stack, batch_id: str) -> None:
    """The held batch: refused for a non-finance user, approved by finance."""
    admin, finance, engineer = stack.api("admin"), stack.api("finance"), stack.api("engineer")
    detail = wait_for("the approval waiting for finance", lambda: parked_approvals(
        finance.get("/dags/psops_approve_corrections/dagRuns/~/hitlDetails"), batch_id))[0]
    run_id = detail["task_instance"]["dag_run_id"]
    answer = (f"/dags/psops_approve_corrections/dagRuns/{run_id}/taskInstances/"
              "finance_approval/-1/hitlDetails")
    with pytest.raises(ApiError) as refused:
        engineer.patch(answer, {"chosen_options": ["Approve"], "params_input": {}})
    assert refused.value.status == 403
    finance.patch(answer, {"chosen_options": ["Approve"], "params_input": {}})
    assert finished_run(admin, "psops_approve_corrections", run_id)["state"] == "success"
    with psycopg.connect(stack.warehouse.conninfo(), row_factory=namedtuple_row) as conn:
        batch = conn.execute(
            "SELECT status, decided_by FROM ops.approval_batches WHERE batch_id = %s",
            (batch_id,)).fetchone()
    assert batch.status == "approved"
    assert batch.decided_by.startswith("finance: finance "), batch.decided_by


def test_assets_chain_the_pipeline_and_finance_approves(stack):
    admin = stack.api("admin")
    unpause_the_pipeline(stack, admin)

    # Three sources in: the transform waits for the fourth.
    *first_three, last = INGESTS
    first = {dag_id: trigger(admin, dag_id) for dag_id in first_three}
    for dag_id, run_id in first.items():
        assert finished_run(admin, dag_id, run_id)["state"] == "success", dag_id
    time.sleep(15)  # several scheduler loops
    assert not [r for r in runs(admin, "psops_transform") if r["run_type"] == "asset_triggered"]

    last_run = trigger(admin, last)
    assert finished_run(admin, last, last_run)["state"] == "success"
    assert asset_run_events(admin, "psops_transform") == set(raw_asset_uris())
    assert asset_run_events(admin, "psops_writeback") == {MARTS_ASSET_URI}

    # The transform ran past its (6 s) deadline: the scheduler noticed, the triggerer ran
    # the callback, the webhook got the message.
    today = datetime.now(UTC).date().isoformat()
    wait_for("the deadline alert of the transform", lambda: [
        w for w in stack.sandbox.writes(system="webhook")
        if f"marts for {today} not published by" in json.dumps(w["body"])], timeout=120)

    # The Celery worker executed the tasks.
    worker_log = (stack.home / "stack" / "logs" / "celery-worker.log").read_text()
    assert "psops_transform" in worker_log

    finance_approves(stack, held_batch(stack))


def test_finance_pages_link_to_real_task_logs(stack):
    import requests

    finance, engineer = stack.api("finance"), stack.api("engineer")
    page = requests.get(f"{stack.url}/psops/billing", timeout=60,
                        headers={"Authorization": f"Bearer {finance.token}"})
    assert page.status_code == 200, page.text[:2000]
    forbidden = requests.get(f"{stack.url}/psops/billing", timeout=60,
                             headers={"Authorization": f"Bearer {engineer.token}"})
    assert forbidden.status_code == 403

    links = re.findall(r'href="[^"]*/dags/psops_transform/runs/([^/"]+)/tasks/([^"/?]+)"',
                       page.text)
    assert links, "the billing page links to no psops_transform task"
    run_id, task_id = (unquote(part) for part in links[0])
    log = finance.get(f"/dags/psops_transform/dagRuns/{run_id}/taskInstances/{task_id}/logs/1")
    text = json.dumps(log["content"])
    assert task_id in text or "psops" in text, text[:2000]
    assert len(log["content"]) > 3, "the log behind the link is empty"


def test_a_failing_task_posts_one_failure_message(stack):
    admin = stack.api("admin")
    stack.sandbox.clear_writes()
    admin.patch("/connections/crm_api", {"connection_id": "crm_api", "conn_type": "http",
                                         "host": urlsplit(stack.sandbox.urls["crm"]).hostname,
                                         "port": urlsplit(stack.sandbox.urls["crm"]).port,
                                         "schema": "http", "password": "wrong-token"})
    run_id = trigger(admin, "psops_ingest_crm")
    assert finished_run(admin, "psops_ingest_crm", run_id)["state"] == "failed"
    failed_tasks = {ti["task_id"] for ti in admin.get(
        f"/dags/psops_ingest_crm/dagRuns/{run_id}/taskInstances")["task_instances"]
        if ti["state"] == "failed"}
    assert failed_tasks, "no task failed"

    def failure_messages() -> list[str]:
        return [json.dumps(w["body"]) for w in stack.sandbox.writes(system="webhook")
                if "psops task failed" in json.dumps(w["body"])]

    wait_for("a failure message per failed task",
             lambda: len(failure_messages()) >= len(failed_tasks), timeout=60)
    time.sleep(5)  # a second message for a task would arrive within this time
    messages = failure_messages()
    per_task = {task: sum(f"psops_ingest_crm.{task} " in m for m in messages)
                for task in failed_tasks}
    assert per_task == dict.fromkeys(failed_tasks, 1), messages
    assert len(messages) == len(failed_tasks)
    assert all(run_id in m and "try 1" in m and f"{stack.url}/" in m for m in messages)
