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
