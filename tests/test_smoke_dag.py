"""A real Airflow run: `bin/airflow dags test psops_smoke` against the test warehouse."""

import pytest

from tests.conftest import run_bin_airflow


@pytest.mark.slow
def test_smoke_dag_writes_and_reads_the_warehouse(airflow_home, warehouse_uri, warehouse_conn):
    before = warehouse_conn.execute("SELECT count(*) FROM ops.smoke_checks").fetchone()[0]
    result = run_bin_airflow(["dags", "test", "psops_smoke", "2026-03-31"], airflow_home,
                             env={"AIRFLOW_CONN_WAREHOUSE": warehouse_uri})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Warehouse smoke check passed" in result.stdout + result.stderr
    after = warehouse_conn.execute("SELECT count(*) FROM ops.smoke_checks").fetchone()[0]
    assert after == before + 1
