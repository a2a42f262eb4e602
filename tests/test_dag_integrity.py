"""Every DAG file imports cleanly and follows the team's rules."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DAG_FILES = sorted((REPO_ROOT / "dags").glob("*.py"))
MAX_RETRY_DELAY = timedelta(minutes=1)


@pytest.fixture(scope="module")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO_ROOT / "dags"))


def test_there_are_dag_files():
    assert DAG_FILES, "dags/ holds no DAG file"


def test_every_file_imports_without_errors(dag_bag):
    assert dag_bag.import_errors == {}
    files_with_dags = {Path(dag.fileloc).name for dag in dag_bag.dags.values()}
    assert files_with_dags == {path.name for path in DAG_FILES}


def test_dag_ids_start_with_psops(dag_bag):
    assert all(dag_id.startswith("psops_") for dag_id in dag_bag.dags), list(dag_bag.dags)


def test_each_dag_has_owner_tags_doc(dag_bag):
    for dag_id, dag in dag_bag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md.strip()) > 80, f"{dag_id} has no real doc_md"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id} has no owner"


def test_each_task_retries_with_a_short_delay(dag_bag):
    for dag_id, dag in dag_bag.dags.items():
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag_id}.{task.task_id} retries={task.retries}"
            assert task.retry_delay <= MAX_RETRY_DELAY, f"{dag_id}.{task.task_id} {task.retry_delay}"


def test_retry_delay_is_overridable_from_the_environment():
    code = (
        "from psops.dag_defaults import default_args;"
        "print(default_args()['retry_delay'].total_seconds())"
    )
    env = {**os.environ, "PSOPS_RETRY_DELAY_SECONDS": "2",
           "PYTHONPATH": str(REPO_ROOT / "plugins")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert float(out) == 2.0


def test_dag_files_do_not_import_heavy_libraries_at_top_level():
    for path in DAG_FILES:
        top_level = [line for line in path.read_text().splitlines()
                     if line.startswith(("import ", "from "))]
        for line in top_level:
            for heavy in ("great_expectations", "pandas", "numpy", "psycopg", "requests"):
                assert heavy not in line, f"{path.name}: top-level `{line}`"


# Tasks whose code sends requests to the ERP (ingest streams: every task of
# psops_ingest_erp but publish).
ERP_TASKS = {
    "psops_writeback": {"set_up_projects", "apply_corrections"},
    "psops_approve_corrections": {"apply_decision"},
}


def test_every_task_posts_its_failure_to_the_webhook(dag_bag):
    from psops.oncall import TaskFailureWebhookNotifier

    for dag_id, dag in dag_bag.dags.items():
        for task in dag.tasks:
            notifiers = [c for c in task.on_failure_callback
                         if isinstance(c, TaskFailureWebhookNotifier)]
            assert len(notifiers) == 1, f"{dag_id}.{task.task_id}: {task.on_failure_callback}"
            assert not task.on_retry_callback, f"{dag_id}.{task.task_id} alerts on every retry"


def test_every_task_and_run_has_a_timeout(dag_bag):
    for dag_id, dag in dag_bag.dags.items():
        assert dag.dagrun_timeout, f"{dag_id} has no dagrun_timeout"
        for task in dag.tasks:
            assert task.execution_timeout, f"{dag_id}.{task.task_id} has no execution_timeout"
            assert task.execution_timeout < dag.dagrun_timeout, f"{dag_id}.{task.task_id}"


def test_the_approval_run_outlasts_its_wait_for_finance(dag_bag):
    dag = dag_bag.dags["psops_approve_corrections"]
    wait = dag.get_task("finance_approval").response_timeout
    assert dag.dagrun_timeout >= wait + timedelta(hours=1)


def test_timeouts_are_overridable_from_the_environment():
    code = (
        "from psops.dag_defaults import default_args, dagrun_timeout;"
        "print(default_args()['execution_timeout'].total_seconds(), dagrun_timeout().total_seconds())"
    )
    env = {**os.environ, "PSOPS_TASK_TIMEOUT_MINUTES": "7", "PSOPS_DAGRUN_TIMEOUT_MINUTES": "90",
           "PYTHONPATH": str(REPO_ROOT / "plugins")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["420.0", "5400.0"]


def test_every_erp_task_uses_the_erp_pool(dag_bag):
    from psops.catalogue import request_pool, request_pools

    erp_pool = request_pool("erp")
    assert request_pools() == {"erp_api": 2}
    erp_ingest = dag_bag.dags["psops_ingest_erp"]
    streams = {t.task_id for t in erp_ingest.tasks if t.task_id != "publish"}
    assert len(streams) == 6
    expected = {**ERP_TASKS, "psops_ingest_erp": streams}
    for dag_id, dag in dag_bag.dags.items():
        in_pool = {t.task_id for t in dag.tasks if t.pool == erp_pool}
        assert in_pool == expected.get(dag_id, set()), dag_id
        assert all(t.pool_slots == 1 for t in dag.tasks), dag_id


def test_the_pool_name_is_readable_without_airflow():
    """bin/airflow creates the pools from `python -m psops.catalogue pools`, without Airflow."""
    code = ("import sys, runpy; sys.argv = ['x', 'pools'];"
            "runpy.run_module('psops.catalogue', run_name='__main__');"
            "print('airflow' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["erp_api", "2", "False"]
