"""Write-back fixtures: one sandbox and one warehouse prepared from it (ingest of all
streams in-process + the transform), cloned per test with CREATE DATABASE ... TEMPLATE
so that every test starts from the same marts and an empty outbox."""

from __future__ import annotations

import os
import secrets
from dataclasses import replace
from datetime import date

import psycopg
import pytest

from psops.connectors.spec import load_spec
from psops.transform.runner import run_transform
from sandbox.server import start_sandbox
from tests.ingest.conftest import run_stream

AS_OF = date(2026, 3, 31)


@pytest.fixture(scope="session")
def wb_sandbox():
    handle = start_sandbox(seed=42, port=0, today=AS_OF)
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def wb_template(database_factory, wb_sandbox):
    """A warehouse with every stream of the four systems ingested and marts built."""
    saved = {k: os.environ.get(k) for k in wb_sandbox.conn_env()}
    os.environ.update(wb_sandbox.conn_env())
    try:
        target = database_factory.create()
        for system in ("crm", "psa", "erp", "hris"):
            for stream in load_spec(system).streams:
                run_stream(target, system, stream.name)
        with psycopg.connect(target.conninfo(), autocommit=True) as conn:
            run_transform(conn, AS_OF)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return target


@pytest.fixture
def wb_env(wb_sandbox, wb_template, database_factory, monkeypatch):
    """A fresh copy of the prepared warehouse as conn `warehouse`, the sandbox reset
    (data, writes, faults) and its connections in this process's environment."""
    name = f"psops_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(database_factory.server.conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{wb_template.dbname}"')
    database_factory.created.append(name)
    target = replace(wb_template, dbname=name)
    wb_sandbox.reset_data()
    wb_sandbox.set_faults(reset=True)
    for key, value in wb_sandbox.conn_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", target.airflow_uri())
    from psops.connectors import source_api_hook

    monkeypatch.setattr(source_api_hook, "BACKOFF_BASE_S", 0.01)
    yield {"target": target, "sandbox": wb_sandbox}
    wb_sandbox.set_faults(reset=True)
