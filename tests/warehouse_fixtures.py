"""Scratch warehouse databases for the tests and the benchmarks: on the server that
`AIRFLOW_CONN_WAREHOUSE` points at when it is set (CI sets it to the machine's
PostgreSQL for a second pass), else on the checkout's embedded PostgreSQL. Each is
named `<prefix>_<pid>_<random>` and dropped at the end.

The tooling of bin/ (psops_warehouse.py, psops_embedded_pg.py) as the tests and
benchmarks see it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bin"))

import psops_embedded_pg  # noqa: E402
from psops_warehouse import (  # noqa: E402
    WarehouseTarget,
    check_connection,
    configured_target,
    is_configured,
    parse_airflow_conn,
    start_embedded,
)

from psops.warehouse_migrations import apply_migrations  # noqa: E402

__all__ = ["DatabaseFactory", "WarehouseTarget", "configured_target", "parse_airflow_conn", "pg_bin",
           "scratch_database", "scratch_server", "start_embedded_once", "stop_embedded"]

pg_bin = psops_embedded_pg.pg_bin


def stop_embedded() -> bool:
    return psops_embedded_pg.stop()


def start_embedded_once() -> bool:
    """Start the embedded server unless a warehouse is configured; True if started here."""
    return False if is_configured() else start_embedded()


@contextlib.contextmanager
def scratch_server() -> Iterator[WarehouseTarget]:
    """The server's maintenance database: the configured server, else the embedded
    one, started when needed and stopped again at the end if started here."""
    started_here = start_embedded_once()
    try:
        server = configured_target()
        check_connection(server)
        yield server
    finally:
        if started_here:
            stop_embedded()


class DatabaseFactory:
    """Creates uniquely named databases on a server and drops them at the end."""

    def __init__(self, server: WarehouseTarget, prefix: str = "psops_test"):
        self.server = server
        self.prefix = prefix
        self.created: list[str] = []

    def create(self, migrate: bool = True, template: str | None = None) -> WarehouseTarget:
        """A new database: migrated, or a copy of the `template` database."""
        name = f"{self.prefix}_{os.getpid()}_{secrets.token_hex(4)}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with psycopg.connect(self.server.conninfo(), autocommit=True) as conn:
            conn.execute(statement)
        self.created.append(name)
        target = replace(self.server, dbname=name)
        if migrate and not template:
            with psycopg.connect(target.conninfo(), autocommit=True) as conn:
                apply_migrations(conn)
        return target

    def drop_all(self) -> None:
        with psycopg.connect(self.server.conninfo(), autocommit=True) as conn:
            for name in self.created:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                             .format(sql.Identifier(name)))
        self.created.clear()


@contextlib.contextmanager
def scratch_database(prefix: str) -> Iterator[WarehouseTarget]:
    """One migrated database of its own (benchmarks), dropped afterwards."""
    with scratch_server() as server:
        factory = DatabaseFactory(server, prefix)
        try:
            yield factory.create()
        finally:
            factory.drop_all()
