"""Adding a stream the way the README says ("Add a stream"): one YAML block in the
connector spec and one staging SQL file, nothing else, in a copy of the product. Then,
in a process that imports only the copy, the ingest and the transform (with GX) run
through the functions the DAG tasks call; the new stream has its task, raw table,
staging and curated tables, and its structural quality rules, checked by GX too (its
suite rendered from the catalogue, as no file in expectations/ holds it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date

import psycopg
import pytest

from psops.db import scalar
from psops.transform.gx_validation import REGENERATE_SUITES
from tests.conftest import REPO_ROOT

AS_OF = date(2026, 3, 31)
PRODUCT = ("dags", "plugins", "include", "expectations")

STREAM_BLOCK = """\
  - name: project_budgets
    request: {path: /v2/projects}
    records: projects
    entity: {name: project_budget, table: project_budgets, key: project_budget_id}
"""

STAGING_SQL = """\
-- PSA project -> staging.project_budgets (budget figures only).
SELECT r.record_id                                          AS project_budget_id,
       r.payload ->> 'code'                                 AS project_code,
       staging.to_num_or_null(r.payload -> 'budget_hours')  AS budget_hours,
       staging.to_num_or_null(r.payload -> 'fee')           AS fee,
       r.payload ->> 'currency'                             AS currency,
       r.payload ->> 'code' LIKE 'PRJ-%'                    AS standard_code,  -- % is literal
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
"""

# Runs in the copy: the ingest step the DAG tasks call, then the transform's steps in
# order, with GX (the new entity has no file in expectations/).
PIPELINE = f"""
import json
import sys
from datetime import date
from pathlib import Path

import psops
from psops import catalogue
from psops.connectors.ingest_dag import build_ingest_dag
from psops.connectors.ingest_task import run_stream
from psops.transform.runner import run_transform

as_of = date({AS_OF.year}, {AS_OF.month}, {AS_OF.day})
for system, stream in (("hris", "employees"), ("psa", "project_budgets")):
    run_stream(system, stream, dag_id=catalogue.ingest_dag_id(system),
               dag_run_id="add_stream", as_of=as_of)
result = run_transform(as_of, with_gx=True, docs_dir=Path(sys.argv[1]))
print(json.dumps({{
    "package": psops.__file__,
    "psa_tasks": sorted(build_ingest_dag("psa").task_ids),
    "rules_run": [outcome.rule_id for outcome in result.gates.rules],
}}))
"""


@pytest.fixture(scope="module")
def sandbox():
    from sandbox.server import start_sandbox

    handle = start_sandbox(seed=11, port=0, today=AS_OF)
    yield handle
    handle.stop()


def copy_with_new_stream(root) -> None:
    for folder in PRODUCT:
        shutil.copytree(REPO_ROOT / folder, root / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    spec = root / "include" / "connectors" / "psa.yaml"
    spec.write_text(spec.read_text().rstrip("\n") + "\n" + STREAM_BLOCK)
    (root / "include" / "sql" / "curated" / "project_budgets.sql").write_text(STAGING_SQL)


def run_pipeline(root, warehouse_uri: str, sandbox, tmp_path) -> tuple[dict, str]:
    """The pipeline's outcome and its log (Airflow logs to stdout)."""
    env = {
        **os.environ, **sandbox.conn_env(),
        "PYTHONPATH": str(root / "plugins"),
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW_CONN_WAREHOUSE": warehouse_uri,
    }
    done = subprocess.run([sys.executable, "-c", PIPELINE, str(tmp_path / "data_docs")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout + done.stderr


def count(conninfo: str, query: str) -> int:
    with psycopg.connect(conninfo) as conn:
        return scalar(conn, query)


def test_a_stream_added_the_documented_way_flows_to_curated(database_factory, sandbox, tmp_path):
    root = tmp_path / "product"
    copy_with_new_stream(root)
    target = database_factory.create()

    outcome, log = run_pipeline(root, target.airflow_uri(), sandbox, tmp_path)

    assert outcome["package"].startswith(str(root))
    assert "load_project_budgets" in outcome["psa_tasks"]
    generated_rules = {"project_budget.key_not_null", "project_budget.key_unique",
                       "project_budget.version_time_future",
                       "project_budget.version_time_unparseable"}
    assert generated_rules <= set(outcome["rules_run"])
    projects = len(sandbox.dataset.psa["projects"].all())
    conninfo = target.conninfo()
    assert count(conninfo, "SELECT count(DISTINCT record_id) FROM raw.psa_project_budgets") == projects
    assert count(conninfo, "SELECT count(*) FROM curated.project_budgets") == projects
    assert count(conninfo, "SELECT count(*) FROM curated.project_budgets WHERE budget_hours > 0") > 0
    assert count(conninfo, "SELECT count(*) FROM curated.project_budgets WHERE standard_code") > 0
    assert count(conninfo, "SELECT count(*) FROM ops.exceptions "
                           "WHERE entity = 'project_budget'") == 0
    assert "no suite file" in log and "for entity project_budget" in log
    assert REGENERATE_SUITES in log
    assert count(conninfo, "SELECT count(*) FROM ops.quality_results "
                           "WHERE suite = 'psops.project_budget' AND success") == len(generated_rules)
