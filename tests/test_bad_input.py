"""Bad set-up gets one clear line naming what is wrong and what to set, not a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import BIN_AIRFLOW, REPO_ROOT
from tests.warehouse_fixtures import parse_airflow_conn

WAREHOUSE_SCRIPT = REPO_ROOT / "bin" / "psops_warehouse.py"


def _bin_airflow(env_overrides, tmp_path, binary=BIN_AIRFLOW):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home"), **env_overrides}
    return subprocess.run([str(binary), "version"], env=env, capture_output=True, text=True,
                          timeout=120)


def _one_clear_line(result):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("value, expected", [
    ("mysql://user@host/db", "must start with postgres://"),
    ("{not json", "not valid JSON"),
    ('{"conn_type": "http", "host": "x"}', "must be 'postgres'"),
    ("postgres://user@host:notaport/db", "port that is not a number"),
    ('{"conn_type": "postgres"}', "has no host"),
])
def test_malformed_warehouse_connection(tmp_path, value, expected):
    line = _one_clear_line(_bin_airflow({"AIRFLOW_CONN_WAREHOUSE": value}, tmp_path))
    assert line.startswith("psops: error: AIRFLOW_CONN_WAREHOUSE")
    assert expected in line


@pytest.mark.parametrize("command", ["check", "migrate"])
def test_unreachable_warehouse_is_one_line(tmp_path, command):
    closed_port = _free_port()
    env = {**os.environ,
           "AIRFLOW_CONN_WAREHOUSE": f"postgres://nobody:secret@127.0.0.1:{closed_port}/db"}
    result = subprocess.run([sys.executable, str(WAREHOUSE_SCRIPT), command], env=env,
                            capture_output=True, text=True, timeout=60)
    line = _one_clear_line(result)
    assert f"cannot reach the warehouse at nobody@127.0.0.1:{closed_port}/db" in line
    assert "secret" not in result.stderr


def test_missing_venv_is_one_line(tmp_path):
    fake_repo = tmp_path / "repo"
    (fake_repo / "bin").mkdir(parents=True)
    shutil.copy(BIN_AIRFLOW, fake_repo / "bin" / "airflow")
    line = _one_clear_line(_bin_airflow({}, tmp_path, fake_repo / "bin" / "airflow"))
    assert ".venv is missing" in line and "make venv" in line


def test_parse_never_echoes_the_password():
    target = parse_airflow_conn("postgres://u:p%40ss@db.internal:6543/wh")
    assert (target.host, target.port, target.user, target.password, target.dbname) == (
        "db.internal", 6543, "u", "p@ss", "wh")
    assert "p@ss" not in target.describe()


def test_json_form_is_understood():
    target = parse_airflow_conn(
        '{"conn_type": "postgres", "host": "h", "port": 5433, "login": "a", '
        '"password": "b", "schema": "w", "extra": {"sslmode": "require"}}')
    assert target.conninfo().count("sslmode='require'") == 1
    assert target.airflow_uri() == "postgres://a:b@h:5433/w"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_wrong_warehouse_database_fails_the_task_at_once(pg_server, monkeypatch):
    """A missing database cannot be fixed by a retry: AirflowFailException, with the reason."""
    from airflow.sdk.exceptions import AirflowFailException

    from psops.db import warehouse_connection

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", pg_server.airflow_uri("psops_no_such_database"))
    with pytest.raises(AirflowFailException, match="psops_no_such_database"):
        with warehouse_connection():
            pass
