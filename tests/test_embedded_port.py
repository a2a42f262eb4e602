"""The embedded warehouse: `env` for bin/airflow, and a free port when the usual one is taken."""

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.slow
def test_taken_port_is_replaced_by_a_free_one_and_remembered(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in ("AIRFLOW_CONN_WAREHOUSE", "PSOPS_WAREHOUSE_PORT")}
    env.update(PSOPS_WAREHOUSE_DIR=str(tmp_path / "wh"), PYTHONPATH=str(REPO_ROOT / "plugins"))
    (tmp_path / "wh").mkdir()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        (tmp_path / "wh" / "port").write_text(f"{taken}\n")

        def warehouse(command):
            return subprocess.run([sys.executable, "-m", "psops.warehouse", command], env=env,
                                  capture_output=True, text=True, timeout=120)

        try:
            started = warehouse("start")
            assert started.returncode == 0, started.stderr
            assert f"port {taken} is taken" in started.stderr
            moved_to = int((tmp_path / "wh" / "port").read_text())
            assert moved_to != taken
            check = warehouse("check")
            assert check.returncode == 0 and f":{moved_to}/psops" in check.stdout
        finally:
            warehouse("stop")


@pytest.mark.slow
def test_env_exports_the_connection_whether_it_starts_the_server_or_not(tmp_path):
    """bin/airflow evals this: the export must be there on the first and every later call."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("AIRFLOW_CONN_WAREHOUSE", "PSOPS_WAREHOUSE_PORT")}
    env.update(PSOPS_WAREHOUSE_DIR=str(tmp_path / "wh"), PYTHONPATH=str(REPO_ROOT / "plugins"))

    def warehouse(command):
        return subprocess.run([sys.executable, "-m", "psops.warehouse", command], env=env,
                              capture_output=True, text=True, timeout=120)

    try:
        first, second = warehouse("env"), warehouse("env")
        for result in (first, second):
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith("export AIRFLOW_CONN_WAREHOUSE='postgres://")
            assert result.stdout.count("\n") == 1
        assert "started the embedded warehouse" in first.stderr
        assert "started" not in second.stderr
    finally:
        warehouse("stop")
