"""On call: the task-failure notifier and the deadline callback post to the real
(loopback) webhook of the sandbox; the DAGs carry the notifier, the timeouts and the
deadline alerts; a real `bin/airflow dags test` of a failing DAG posts exactly one
message per failed task, after its retries."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from psops import dag_defaults, oncall
from psops.catalogue import system_names
from sandbox.server import start_sandbox
from tests.conftest import REPO_ROOT, run_bin_airflow

SECRET = "sandboxwebhooksecret"
AS_OF = "2026-03-31"


@pytest.fixture(scope="module")
def sandbox():
    handle = start_sandbox(seed=42, port=0, today=AS_OF)
    yield handle
    handle.stop()


@pytest.fixture
def webhook(sandbox, monkeypatch):
    """This process's `alerts_webhook` is the sandbox's; writes and faults reset."""
    sandbox.clear_writes()
    sandbox.set_faults(reset=True)
    for key, value in sandbox.conn_env().items():
        monkeypatch.setenv(key, value)
    yield sandbox
    sandbox.set_faults(reset=True)


def _logged(capsys, caplog) -> str:
    """What was logged (the notifier logs through Airflow's structlog, to stdout)."""
    captured = capsys.readouterr()
    return captured.out + captured.err + caplog.text


def _posts(sandbox) -> list[dict]:
    return [w for w in sandbox.writes("webhook") if w["method"] == "POST"]


def _failure_context(error) -> dict:
    ti = SimpleNamespace(
        dag_id="psops_ingest_crm", task_id="load_deals", run_id="scheduled__2026-03-31T00:00:00+00:00",
        try_number=3, map_index=-1,
        log_url="http://airflow.example/dags/psops_ingest_crm/runs/scheduled__2026-03-31T00%3A00%3A00%2B00%3A00"
                "/tasks/load_deals?try_number=3")
    return {"ti": ti, "task_instance": ti, "exception": error, "run_id": ti.run_id}


# -- the failure message --------------------------------------------------------------

def test_first_line_of_the_error():
    assert oncall.first_line(ValueError("boom\nTraceback ...")) == "ValueError: boom"
    assert oncall.first_line("killed by the scheduler\nmore") == "killed by the scheduler"
    assert oncall.first_line(None).startswith("no exception recorded")
    assert len(oncall.first_line(RuntimeError("x" * 1000))) == oncall.MAX_ERROR_CHARS


def test_notifier_posts_one_message_to_the_webhook(webhook, capsys, caplog):
    caplog.set_level(logging.INFO)
    notifier = oncall.TaskFailureWebhookNotifier()
    notifier(_failure_context(RuntimeError("CRM GET /crm/v3/objects/deals: 503\nsecond line")))
    posts = _posts(webhook)
    assert len(posts) == 1 and posts[0]["status"] == 200
    message = posts[0]["body"]
    assert message["text"] == (
        "psops task failed: psops_ingest_crm.load_deals (run scheduled__2026-03-31T00:00:00+00:00, "
        "try 3): RuntimeError: CRM GET /crm/v3/objects/deals: 503")
    block = message["blocks"][0]["text"]["text"]
    assert "`psops_ingest_crm` / `load_deals`" in block and "try 3" in block
    assert "log: <http://airflow.example/dags/psops_ingest_crm/runs/" in block
    assert "second line" not in json.dumps(message)
    logged = _logged(capsys, caplog)
    assert SECRET not in logged
    assert "failure posted to alerts_webhook (http://127.0.0.1:" in logged


@pytest.mark.parametrize("fault", ["500", "lost", "no_connection"])
def test_notifier_never_raises(webhook, monkeypatch, capsys, caplog, fault):
    if fault == "500":
        webhook.set_faults(script={"webhook": [500]})
    elif fault == "lost":
        webhook.set_faults(lost_response_rate=1.0, lost_response_mode="drop", systems=["webhook"])
    else:
        monkeypatch.delenv("AIRFLOW_CONN_ALERTS_WEBHOOK")
    oncall.TaskFailureWebhookNotifier()(_failure_context(ValueError("the task's own error")))
    logged = _logged(capsys, caplog)
    assert "could not post the task failure to alerts_webhook" in logged
    assert SECRET not in logged
    assert len(_posts(webhook)) == (0 if fault == "no_connection" else 1)  # never re-posted


def test_log_link_of_a_real_task_instance_uses_the_api_base_url(monkeypatch):
    """The link comes from RuntimeTaskInstance.log_url ([api] base_url)."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.psops.example")
    url = RuntimeTaskInstance.log_url.fget(SimpleNamespace(
        run_id="manual__2026-03-31T00:00:00+00:00", dag_id="psops_writeback",
        task_id="set_up_projects", map_index=-1, try_number=2))
    message = oncall.failure_message({"ti": SimpleNamespace(
        dag_id="psops_writeback", task_id="set_up_projects", run_id="r", try_number=2,
        map_index=-1, log_url=url), "exception": None})
    assert ("<https://airflow.psops.example/dags/psops_writeback/runs/manual__2026-03-31T00%3A00%3A00"
            "%2B00%3A00/tasks/set_up_projects?try_number=2|") in message["blocks"][0]["text"]["text"]


# -- the deadline callback ------------------------------------------------------------

def _deadline_context(deadline_time, **run) -> dict:
    return {"dag_run": {"dag_id": "psops_transform", "dag_run_id": "asset_triggered__2026-03-31T03:12:00",
                        "logical_date": None, "run_after": "2026-03-31T03:12:00Z",
                        "queued_at": "2026-03-31T03:12:00Z", "state": "running", **run},
            "deadline": {"id": "0199", "deadline_time": deadline_time}}


def test_marts_deadline_callback_posts_to_the_webhook(webhook):
    """As the triggerer calls it: kwargs of the AsyncCallback plus `context`."""
    result = asyncio.run(oncall.deadline_missed(
        kind="marts", context=_deadline_context(datetime(2026, 3, 31, 5, 12, tzinfo=UTC))))
    expected = ("psops: marts for 2026-03-31 not published by 2026-03-31 05:12 UTC "
                "(psops_transform run asset_triggered__2026-03-31T03:12:00, running)")
    assert result == expected
    posts = _posts(webhook)
    assert len(posts) == 1 and posts[0]["status"] == 200 and posts[0]["body"]["text"] == expected


def test_sources_deadline_callback_and_its_failure(webhook):
    context = _deadline_context("2026-03-31T06:00:00+00:00", dag_id="psops_ingest_erp",
                                dag_run_id="scheduled__2026-03-31T00:00:00+00:00",
                                logical_date="2026-03-31T00:00:00Z", state="failed")
    text = asyncio.run(oncall.deadline_missed(kind="sources", system="erp", context=context))
    assert text.startswith("psops: ERP data for 2026-03-31 not loaded by 2026-03-31 06:00 UTC "
                           "(psops_ingest_erp run scheduled__2026-03-31T00:00:00+00:00, failed)")
    webhook.set_faults(script={"webhook": [500]})
    with pytest.raises(Exception, match="500") as err:  # the callback shows as failed
        asyncio.run(oncall.deadline_missed(kind="sources", system="erp", context=context))
    assert SECRET not in str(err.value)


def test_no_deadline_message_once_the_run_has_succeeded(webhook):
    context = _deadline_context("2026-03-31T05:12:00+00:00", state="success")
    result = asyncio.run(oncall.deadline_missed(kind="marts", context=context))
    assert result.startswith("not posted (run succeeded): psops: marts for 2026-03-31")
    assert _posts(webhook) == []


def test_the_callback_receives_context_as_the_triggerer_passes_it():
    """airflow.triggers.callback passes `context` only to callables that accept it."""
    from airflow._shared.module_loading import accepts_context

    assert accepts_context(oncall.deadline_missed)


# -- the DAGs -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def serialized_dags():
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}
    return {dag_id: DagSerialization.serialize_dag(dag) for dag_id, dag in bag.dags.items()}


def _callback(alert: dict) -> dict:
    return alert["callback"]["__data__"]


def test_transform_carries_the_marts_deadline(serialized_dags):
    (alert,) = serialized_dags["psops_transform"]["deadline"]
    assert alert["reference"] == {"reference_type": "DagRunQueuedAtDeadline"}
    assert alert["interval"]["__data__"] == dag_defaults.marts_deadline().total_seconds() == 7200
    assert alert["callback"]["__classname__"] == "airflow.sdk.definitions.callback.AsyncCallback"
    assert _callback(alert) == {"path": "psops.oncall.deadline_missed", "kwargs": {"kind": "marts"}}


@pytest.mark.parametrize("system", system_names())
def test_ingest_dags_carry_the_sources_deadline(serialized_dags, system):
    (alert,) = serialized_dags[f"psops_ingest_{system}"]["deadline"]
    assert alert["reference"] == {"reference_type": "DagRunLogicalDateDeadline"}
    assert alert["interval"]["__data__"] == 6 * 3600
    assert _callback(alert) == {"path": "psops.oncall.deadline_missed",
                                "kwargs": {"kind": "sources", "system": system}}


def test_timeouts_and_deadlines_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PSOPS_TASK_TIMEOUT_MINUTES", "5")
    monkeypatch.setenv("PSOPS_DAGRUN_TIMEOUT_MINUTES", "30")
    monkeypatch.setenv("PSOPS_MARTS_DEADLINE_MINUTES", "45")
    monkeypatch.setenv("PSOPS_SOURCES_DUE_HOURS", "7.5")
    assert dag_defaults.default_args()["execution_timeout"] == timedelta(minutes=5)
    assert dag_defaults.dagrun_timeout() == timedelta(minutes=30)
    assert dag_defaults.dagrun_timeout(waits_for=timedelta(hours=24)) == timedelta(hours=24, minutes=30)
    assert oncall.marts_deadline_alert().interval == timedelta(minutes=45)
    assert oncall.sources_deadline_alert("crm").interval == timedelta(hours=7, minutes=30)


# -- a real failing DAG run -----------------------------------------------------------

def _crm_env(sandbox, warehouse_uri, password=None) -> dict:
    env = {**sandbox.conn_env(), "AIRFLOW_CONN_WAREHOUSE": warehouse_uri,
           "AIRFLOW__API__BASE_URL": "http://airflow.psops.test:8080",
           "PSOPS_HTTP_BACKOFF_BASE_SECONDS": "0.01"}
    if password is not None:
        crm = json.loads(env["AIRFLOW_CONN_CRM_API"])
        env["AIRFLOW_CONN_CRM_API"] = json.dumps({**crm, "password": password})
    return env


@pytest.mark.slow
@pytest.mark.db
def test_dags_test_with_a_wrong_token_posts_one_failure(webhook, warehouse_uri, airflow_home):
    """401 -> AirflowFailException: no retry, one message for the failed task."""
    result = run_bin_airflow(
        ["dags", "test", "psops_ingest_crm", AS_OF, "--mark-success-pattern", "load_companies"],
        airflow_home, _crm_env(webhook, warehouse_uri, password="wrong-token"))
    output = result.stdout + result.stderr
    assert "CRM rejected the credentials of connection 'crm_api'" in output, output[-4000:]
    posts = _posts(webhook)
    assert len(posts) == 1, [p["body"]["text"] for p in posts]
    text = posts[0]["body"]["text"]
    assert text.startswith("psops task failed: psops_ingest_crm.load_deals (run manual__")
    assert ", try 1): AirflowFailException: CRM rejected the credentials of connection 'crm_api' " \
           "(401 on POST /crm/v3/objects/deals/search)" in text, text
    block = posts[0]["body"]["blocks"][0]["text"]["text"]
    assert "log: <http://airflow.psops.test:8080/dags/psops_ingest_crm/runs/manual__" in block
    assert "/tasks/load_deals?try_number=1|" in block
    assert "wrong-token" not in json.dumps(posts[0]["body"]) and SECRET not in output


@pytest.mark.slow
@pytest.mark.db
def test_dags_test_posts_once_after_the_last_retry(webhook, warehouse_uri, airflow_home):
    """5xx on every CRM request: each try fails, Airflow retries (PSOPS_RETRIES=2), and
    only the final failure posts."""
    webhook.set_faults(error_rate=1.0, systems=["crm"])
    result = run_bin_airflow(
        ["dags", "test", "psops_ingest_crm", AS_OF, "--mark-success-pattern", "load_companies"],
        airflow_home, {**_crm_env(webhook, warehouse_uri), "PSOPS_HTTP_MAX_ATTEMPTS": "1",
                       "PSOPS_RETRIES": "2"})
    output = result.stdout + result.stderr
    posts = _posts(webhook)
    assert len(posts) == 1, ([p["body"]["text"] for p in posts], output[-4000:])
    assert ", try 3): " in posts[0]["body"]["text"]
    assert "psops_ingest_crm.load_deals" in posts[0]["body"]["text"]


def test_deadline_alerts_can_be_switched_off_and_bin_airflow_does_so_for_dags_test(monkeypatch):
    monkeypatch.setenv("PSOPS_DEADLINE_ALERTS", "off")
    assert oncall.marts_deadline_alert() is None
    assert oncall.sources_deadline_alert("crm") is None
    monkeypatch.setenv("PSOPS_DEADLINE_ALERTS", "on")
    assert oncall.marts_deadline_alert() is not None
    script = (REPO_ROOT / "bin" / "airflow").read_text()
    assert 'export PSOPS_DEADLINE_ALERTS="${PSOPS_DEADLINE_ALERTS:-off}"' in script
