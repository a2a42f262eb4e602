"""Fixtures for the finance UI: one warehouse with the sandbox's data, built once per
session the way production builds it (the ingest engine, then a real
`bin/airflow dags test psops_transform` run, so Airflow knows the run the pages link
to and the GX Data Docs exist), plus Airflow login tokens."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
import pytest

from tests.conftest import BIN_AIRFLOW, REPO_ROOT, run_bin_airflow
from tests.conftest import temporary_environment as environment

AS_OF = date(2026, 3, 31)
JWT_SECRET = "psops-ui-tests-" + "0123456789abcdef" * 4
FINANCE_USER, FINANCE_PASSWORD = "finance", "finance-test-password"
# A logged-in Airflow user who is not finance (PSOPS_FINANCE_USERS is `finance` in these tests).
OTHER_USER, OTHER_PASSWORD = "engineer", "engineer-test-password"


@dataclass
class FinanceWarehouse:
    target: object              # tests.warehouse_fixtures.WarehouseTarget
    uri: str                    # postgres:// URI (AIRFLOW_CONN_WAREHOUSE)
    airflow_home: Path          # the in-process Airflow home, shared with bin/airflow runs
    data_docs: Path
    transform_run_id: str

    def conn(self):
        return psycopg.connect(self.target.conninfo(), autocommit=True)


def _ingest_everything(target) -> None:
    from sandbox.server import start_sandbox
    from tests.ingest.conftest import ingest_everything

    with start_sandbox(seed=42, port=0, today=AS_OF) as sandbox:
        ingest_everything(target, sandbox, dag_run_id="ui_test_ingest")


@pytest.fixture(scope="session")
def finance_warehouse(database_factory, tmp_path_factory) -> FinanceWarehouse:
    target = database_factory.create()
    _ingest_everything(target)
    airflow_home = Path(os.environ["AIRFLOW_HOME"])
    data_docs = tmp_path_factory.mktemp("data_docs")
    result = run_bin_airflow(
        ["dags", "test", "psops_transform", AS_OF.isoformat()], airflow_home,
        env={"AIRFLOW_CONN_WAREHOUSE": target.airflow_uri(),
             "PSOPS_DATA_DOCS_DIR": str(data_docs)},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with psycopg.connect(target.conninfo()) as conn:
        run_id = conn.execute(
            "SELECT dag_run_id FROM ops.transform_runs WHERE as_of = %s AND status = 'succeeded' "
            "ORDER BY id DESC LIMIT 1", (AS_OF,)).fetchone()[0]
    return FinanceWarehouse(target, target.airflow_uri(), airflow_home, data_docs, run_id)


@pytest.fixture(scope="module")
def airflow_auth(finance_warehouse):
    """The in-process auth manager (SimpleAuthManager) and a way to mint UI tokens."""
    with environment(AIRFLOW__API_AUTH__JWT_SECRET=JWT_SECRET):
        yield _token_factory()


def _token_factory():
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = create_auth_manager()

    def token(username: str = FINANCE_USER, role: str = "viewer") -> str:
        return manager.generate_jwt(SimpleAuthManagerUser(username=username, role=role))

    return token


@pytest.fixture(scope="module")
def ui_client(finance_warehouse, airflow_auth):
    """TestClient of the plugin app as the api-server mounts it (at /psops), reading the
    warehouse through the Airflow connection `warehouse` like in production."""
    from fastapi.testclient import TestClient

    from psops.ui.app import create_app

    with environment(AIRFLOW_CONN_WAREHOUSE=finance_warehouse.uri,
                     PSOPS_DATA_DOCS_DIR=str(finance_warehouse.data_docs),
                     PSOPS_FINANCE_USERS=FINANCE_USER):
        yield TestClient(create_app(), root_path="/psops")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ApiServer:
    url: str
    process: subprocess.Popen
    log: Path


@contextlib.contextmanager
def running_api_server(airflow_home: Path, work: Path, users: dict[str, tuple[str, str]],
                       env: dict[str, str]) -> Iterator[ApiServer]:
    """A real `bin/airflow api-server` (with the psops plugins) on a free loopback port,
    its SimpleAuthManager users `{name: (role, password)}` with passwords the test knows."""
    passwords = work / "passwords.json"
    passwords.write_text(json.dumps({name: password for name, (_, password) in users.items()}))
    port = free_port()
    log = work / "api-server.log"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
            f"{name}:{role}" for name, (role, _) in users.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        **env,
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(BIN_AIRFLOW), "api-server", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield ApiServer(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def login_token(server: ApiServer, username: str, password: str) -> str:
    """A JWT from the api-server's login endpoint, as the UI gets one."""
    import requests

    response = requests.post(f"{server.url}/auth/token",
                             json={"username": username, "password": password}, timeout=10)
    response.raise_for_status()
    return response.json()["access_token"]


@pytest.fixture(scope="session")
def api_server(finance_warehouse, tmp_path_factory):
    """The api-server over the finance warehouse, with the finance user (role viewer:
    the pages need no Airflow permission, only to be finance) and a non-finance one."""
    users = {FINANCE_USER: ("viewer", FINANCE_PASSWORD), OTHER_USER: ("user", OTHER_PASSWORD)}
    with running_api_server(
            finance_warehouse.airflow_home, tmp_path_factory.mktemp("api_server"), users,
            {"AIRFLOW_CONN_WAREHOUSE": finance_warehouse.uri,
             "PSOPS_DATA_DOCS_DIR": str(finance_warehouse.data_docs),
             "PSOPS_FINANCE_USERS": FINANCE_USER}) as server:
        yield server


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"api-server exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"api-server not healthy after {timeout} s: {log.read_text()[-3000:]}")
