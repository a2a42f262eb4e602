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

from psops.settings import DATA_DOCS_DIR
from tests.warehouse_fixtures import (
    DatabaseFactory,
    WarehouseTarget,
    configured_target,
    scratch_server,
    start_embedded_once,
    stop_embedded,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN_AIRFLOW = REPO_ROOT / "bin" / "airflow"

EMBEDDED_STARTED_HERE = pytest.StashKey[bool]()

# Airflow imported inside the test process (DagBag, hooks) gets a home of its own,
# never the user's ~/airflow or the repo's .airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="psops_test_airflow_home_")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO_ROOT / "plugins")
# Data Docs of the transforms the tests run: per test process, not the repo's build/.
os.environ[DATA_DOCS_DIR.name] = str(Path(os.environ["AIRFLOW_HOME"]) / "data_docs")


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
    """Tests that touch PostgreSQL are marked `db`: CI runs them again on an external server.
    Modules holding a `slow` test come first, so that under pytest-xdist (whole modules
    per worker, `make test`) the long ones start early instead of ending the run alone."""
    for item in items:
        if "pg_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)
    slow_modules = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_modules)  # stable: order kept inside


def pytest_configure(config):
    """With pytest-xdist (`make test` runs three workers) the controller starts the
    embedded warehouse before the workers and stops it after them, so no worker stops a
    server another still uses; and it migrates one database first, so that the roles the
    migrations create cluster-wide exist before workers migrate theirs at once."""
    if config.getoption("numprocesses", None) and not hasattr(config, "workerinput"):
        config.stash[EMBEDDED_STARTED_HERE] = start_embedded_once()
        factory = DatabaseFactory(configured_target(), prefix="psops_test_roles")
        factory.create()
        factory.drop_all()


def pytest_unconfigure(config):
    if config.stash.get(EMBEDDED_STARTED_HERE, False):
        stop_embedded()


def pytest_sessionfinish(session, exitstatus):
    import shutil

    shutil.rmtree(os.environ["AIRFLOW_HOME"], ignore_errors=True)
