"""Write-back fixtures: one sandbox and one warehouse prepared from it (ingest of all
streams in-process + the transform), cloned per test with CREATE DATABASE ... TEMPLATE
so that every test starts from the same marts and an empty outbox."""

from __future__ import annotations

from datetime import date

import pytest

from psops.transform.runner import run_transform
from sandbox.server import start_sandbox
from tests.conftest import temporary_environment
from tests.ingest.conftest import ingest_everything

AS_OF = date(2026, 3, 31)


@pytest.fixture(scope="session")
def wb_sandbox():
    handle = start_sandbox(seed=42, port=0, today=AS_OF)
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def wb_template(database_factory, wb_sandbox):
    """A warehouse with every stream of the four systems ingested and marts built."""
    target = database_factory.create()
    ingest_everything(target, wb_sandbox)
    with temporary_environment(AIRFLOW_CONN_WAREHOUSE=target.airflow_uri()):
        run_transform(AS_OF)
    return target


@pytest.fixture
def wb_env(wb_sandbox, wb_template, database_factory, monkeypatch):
    """A fresh copy of the prepared warehouse as conn `warehouse`, the sandbox reset
    (data, writes, faults) and its connections in this process's environment."""
    target = database_factory.create(template=wb_template.dbname)
    wb_sandbox.reset_data()
    wb_sandbox.set_faults(reset=True)
    for key, value in wb_sandbox.conn_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", target.airflow_uri())
    monkeypatch.setenv("PSOPS_HTTP_BACKOFF_BASE_SECONDS", "0.01")
    yield {"target": target, "sandbox": wb_sandbox}
    wb_sandbox.set_faults(reset=True)


@pytest.fixture(scope="module")
def approval_airflow(wb_sandbox, tmp_path_factory):
    """An Airflow home and a real api-server over it for answering the approval task the
    way the UI does. `finance` (PSOPS_FINANCE_USERS) and `engineer` (not finance) both
    have the Airflow role `user`, the least that may answer a HITL task: only the task's
    assignment tells them apart. The warehouse is each test's (wb_env)."""
    from tests.conftest import run_bin_airflow
    from tests.ui.conftest import (
        FINANCE_PASSWORD,
        FINANCE_USER,
        JWT_SECRET,
        OTHER_PASSWORD,
        OTHER_USER,
        running_api_server,
    )

    home = tmp_path_factory.mktemp("approval_airflow_home")
    env = {**wb_sandbox.conn_env(), "PSOPS_FINANCE_USERS": FINANCE_USER,
           "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET}
    migrated = run_bin_airflow(["dags", "list"], home, env)  # migrate the metadata DB once
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    users = {FINANCE_USER: ("user", FINANCE_PASSWORD), OTHER_USER: ("user", OTHER_PASSWORD)}
    with running_api_server(home, tmp_path_factory.mktemp("approval_api_server"), users,
                            env) as server:
        yield {"home": home, "server": server,
               "env": {**env, "AIRFLOW__API__BASE_URL": server.url}}
