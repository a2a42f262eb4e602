"""The embedded warehouse: `env` for bin/airflow, and a free port when the usual one is taken."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

WAREHOUSE_SCRIPT = REPO_ROOT / "bin" / "psops_warehouse.py"


def _warehouse(command: str, data_dir: Path) -> subprocess.CompletedProcess:
    """bin/psops_warehouse.py <command> for an embedded server in `data_dir`."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("AIRFLOW_CONN_WAREHOUSE", "PSOPS_WAREHOUSE_PORT")}
    env["PSOPS_WAREHOUSE_DIR"] = str(data_dir)
    return subprocess.run([sys.executable, str(WAREHOUSE_SCRIPT), command], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_taken_port_is_replaced_by_a_free_one_and_remembered(tmp_path):
    data_dir = tmp_path / "wh"
    data_dir.mkdir()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        (data_dir / "port").write_text(f"{taken}\n")
        try:
            started = _warehouse("start", data_dir)
            assert started.returncode == 0, started.stderr
            assert f"port {taken} is taken" in started.stderr
            moved_to = int((data_dir / "port").read_text())
            assert moved_to != taken
            check = _warehouse("check", data_dir)
            assert check.returncode == 0 and f":{moved_to}/psops" in check.stdout
        finally:
            _warehouse("stop", data_dir)


@pytest.mark.slow
def test_env_exports_the_connection_whether_it_starts_the_server_or_not(tmp_path):
    """bin/airflow evals this: the export must be there on the first and every later call."""
    data_dir = tmp_path / "wh"
    try:
        first, second = _warehouse("env", data_dir), _warehouse("env", data_dir)
        for result in (first, second):
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith("export AIRFLOW_CONN_WAREHOUSE='postgres://")
            assert result.stdout.count("\n") == 1
        assert "started the embedded warehouse" in first.stderr
        assert "started" not in second.stderr
    finally:
        _warehouse("stop", data_dir)
