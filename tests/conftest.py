"""Shared fixtures: a real PostgreSQL, throwaway warehouse databases, real Airflow runs.

The server is the one `AIRFLOW_CONN_WAREHOUSE` points at when it is set (CI
sets it to the machine's PostgreSQL for a second pass), else the embedded
PostgreSQL of the repo. Every test session works in databases of its own,
named `psops_test_<pid>_<random>`, and drops them at the end
(tests/warehouse_fixtures.py).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.warehouse_fixtures import DatabaseFactory, WarehouseTarget, scratch_server

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN_AIRFLOW = REPO_ROOT / "bin" / "airflow"

# Airflow imported inside the test process (DagBag, hooks) gets a home of its own,
# never the user's ~/airflow or the repo's .airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="psops_test_airflow_home_")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO_ROOT / "plugins")


@pytest.fixture(scope="session")
def pg_server():
    """A WarehouseTarget for the test server's maintenance database."""
    with scratch_server() as server:
        yield server


@pytest.fixture(scope="session")
def database_factory(pg_server):
    factory = DatabaseFactory(pg_server)
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session")
def warehouse_target(database_factory) -> WarehouseTarget:
    """A migrated database shared by the session's tests."""
    return database_factory.create()


@pytest.fixture(scope="session")
def warehouse_uri(warehouse_target) -> str:
    """postgres:// URI of the session's database (works for psycopg and Airflow)."""
    return warehouse_target.airflow_uri()


@pytest.fixture
def warehouse_conn(warehouse_target, monkeypatch):
    """An autocommit connection to the session's database, which is also the Airflow
    connection `warehouse` during the test (what psops.db and the step functions open)."""
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse_target.airflow_uri())
    with psycopg.connect(warehouse_target.conninfo(), autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory) -> Path:
    """One Airflow home (SQLite metadata) for every `dags test` of the session."""
    return tmp_path_factory.mktemp("airflow_home")


@contextlib.contextmanager
def temporary_environment(**values: str):
    """os.environ with these values, restored afterwards (other tests run `bin/airflow`
    with this process's environment)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_bin_airflow(args: list[str], airflow_home: Path, env: dict | None = None,
                    timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `bin/airflow ...` as a user would, with the test's environment on top."""
    full_env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "PSOPS_RETRY_DELAY_SECONDS": "1",
        **(env or {}),
    }
    return subprocess.run(
        [str(BIN_AIRFLOW), *args], env=full_env, capture_output=True, text=True,
        timeout=timeout, cwd="/",
    )


def pytest_collection_modifyitems(config, items):
    """Tests that touch PostgreSQL are marked `db`: CI runs them again on an external server."""
    for item in items:
        if "pg_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


def pytest_sessionfinish(session, exitstatus):
    import shutil

    shutil.rmtree(os.environ["AIRFLOW_HOME"], ignore_errors=True)
