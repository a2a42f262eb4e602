"""Ingest fixtures: a running sandbox per session and a helper to run one stream."""

from __future__ import annotations

import dataclasses
from datetime import date

import psycopg
import pytest
from psycopg import sql

from psops import catalogue
from psops.connectors.engine import StreamRun
from psops.db import scalar
from sandbox.server import start_sandbox

AS_OF = date(2026, 3, 31)


@pytest.fixture(scope="session")
def ingest_sandbox():
    handle = start_sandbox(seed=11, port=0, today=AS_OF)
    yield handle
    handle.stop()


@pytest.fixture
def sandbox_env(ingest_sandbox, monkeypatch):
    """The sandbox's AIRFLOW_CONN_* in this process; faults reset before and after."""
    ingest_sandbox.set_faults(reset=True)
    for key, value in ingest_sandbox.conn_env().items():
        monkeypatch.setenv(key, value)
    yield ingest_sandbox
    ingest_sandbox.set_faults(reset=True)


def with_page_size(stream, size: int):
    """The stream with another page size (odd sizes shake out off-by-one paging bugs)."""
    paginator = stream.paginator
    if paginator.type == "body_cursor":
        return dataclasses.replace(stream, paginator=dataclasses.replace(paginator, page_size=size))
    return dataclasses.replace(stream, params={**stream.params, paginator.page_size_param: size})


def run_stream(target, system: str, stream_name: str, *, page_size: int | None = None,
               dag_run_id: str = "test", hook=None):
    spec = catalogue.system(system)
    stream = spec.stream(stream_name)
    if page_size:
        stream = with_page_size(stream, page_size)
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        return StreamRun(spec, stream, conn, dag_id=catalogue.ingest_dag_id(system),
                         dag_run_id=dag_run_id, as_of=AS_OF, hook=hook).execute()


def ingest_everything(target, sandbox, dag_run_id: str = "test") -> None:
    """Every stream of the catalogue from `sandbox` into `target`, in-process."""
    from tests.conftest import temporary_environment

    with temporary_environment(**sandbox.conn_env()):
        for stream in catalogue.streams():
            run_stream(target, stream.system, stream.name, dag_run_id=dag_run_id)


def loaded_keys(target, system: str, stream_name: str) -> list[str]:
    """The record ids in the stream's raw table (a record loaded twice: twice)."""
    table = sql.Identifier("raw", catalogue.system(system).stream(stream_name).raw_table)
    with psycopg.connect(target.conninfo()) as conn:
        return [record_id for (record_id,) in conn.execute(
            sql.SQL("SELECT record_id FROM {}").format(table))]


def value(target, query: str, params=()):
    """The one value a query returns, in the target database."""
    with psycopg.connect(target.conninfo()) as conn:
        return scalar(conn, query, params)
