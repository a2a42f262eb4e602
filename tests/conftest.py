"""Shared fixtures: a real PostgreSQL, throwaway warehouse databases, real Airflow runs.

The server is the one `AIRFLOW_CONN_WAREHOUSE` points at when it is set (CI
sets it to the machine's PostgreSQL for a second pass), else the embedded
PostgreSQL of the repo. Every test session works in databases of its own,
named `psops_test_<pid>_<random>`, and drops them at the end.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from psops import warehouse
from psops.warehouse_migrations import apply_migrations

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
    target, started_here = warehouse.configured_or_started()
    warehouse.check_connection(target)
    yield target
    if started_here:
        warehouse.stop_embedded()


class DatabaseFactory:
    """Creates uniquely named databases on the test server and drops them at the end."""

    def __init__(self, server: warehouse.WarehouseTarget):
        self.server = server
        self.created: list[str] = []

    def create(self, migrate: bool = True, template: str | None = None
               ) -> warehouse.WarehouseTarget:
        """A new database: migrated, or a copy of the `template` database."""
        target = warehouse.create_database(self.server, "psops_test", template)
        self.created.append(target.dbname)
        if migrate and not template:
            with psycopg.connect(target.conninfo(), autocommit=True) as conn:
                apply_migrations(conn)
        return target

    def drop_all(self) -> None:
        with psycopg.connect(self.server.conninfo(), autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


@pytest.fixture(scope="session")
def database_factory(pg_server):
    factory = DatabaseFactory(pg_server)
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session")
def warehouse_target(database_factory) -> warehouse.WarehouseTarget:
    """A migrated database shared by the session's tests."""
    return database_factory.create()


@pytest.fixture(scope="session")
def warehouse_uri(warehouse_target) -> str:
    """postgres:// URI of the session's database (works for psycopg and Airflow)."""
    return warehouse_target.airflow_uri()


@pytest.fixture
def warehouse_conn(warehouse_target):
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
