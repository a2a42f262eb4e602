"""Write-back fixtures: one sandbox and one warehouse prepared from it (ingest of all
streams in-process + the transform), cloned per test with CREATE DATABASE ... TEMPLATE
so that every test starts from the same marts and an empty outbox."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from psops.transform.runner import run_transform
from sandbox.server import start_sandbox
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
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        run_transform(conn, AS_OF)
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
    from psops.connectors import source_api_hook

    monkeypatch.setattr(source_api_hook, "BACKOFF_BASE_S", 0.01)
    yield {"target": target, "sandbox": wb_sandbox}
    wb_sandbox.set_faults(reset=True)
