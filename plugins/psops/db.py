"""The one way psops code gets a warehouse connection: `PostgresHook` on the Airflow
connection `warehouse` (environment `AIRFLOW_CONN_WAREHOUSE`, a secrets backend or
Airflow's metadata database), as a psycopg 3 connection.

    with warehouse_connection() as conn:            # tasks, step functions, CLI tools
    with analyst_connection() as conn:              # the UI: read-only, as psops_analyst

Errors a retry cannot fix (wrong credentials, missing database) raise
AirflowFailException (a task fails at once); an unreachable server raises
psycopg.OperationalError, left to Airflow's retries. Airflow is imported inside the
functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from psops.settings import WAREHOUSE_CONN_ID

log = logging.getLogger(__name__)

ANALYST_ROLE = "psops_analyst"
ANALYST_STATEMENT_TIMEOUT_MS = 15_000
_PERMANENT_CONNECT_ERRORS = (
    "password authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
)


class WarehouseUnavailable(RuntimeError):
    """The warehouse could not be reached or the analyst role could not be taken."""


# Connection options psops needs unless the `warehouse` connection's extra says otherwise:
# a page or a task must not hang on an unreachable server, and the server's activity
# view should say who is connected.
CONNECT_DEFAULTS = {"connect_timeout": 5, "application_name": "psops"}


def warehouse_hook():
    """PostgresHook on the `warehouse` connection, with CONNECT_DEFAULTS under its extra."""
    import copy
    import json

    from airflow.providers.postgres.hooks.postgres import PostgresHook

    connection = copy.copy(PostgresHook(postgres_conn_id=WAREHOUSE_CONN_ID).connection)
    connection.extra = json.dumps({**CONNECT_DEFAULTS, **connection.extra_dejson})
    return PostgresHook(postgres_conn_id=WAREHOUSE_CONN_ID, connection=connection)


def _connect():
    import psycopg
    from airflow.sdk.exceptions import AirflowFailException
    from psycopg.rows import tuple_row

    from psops.oncall import first_line

    try:
        conn = warehouse_hook().get_conn()
    except psycopg.OperationalError as err:
        message = first_line(str(err), missing=repr(err))
        if any(marker in message for marker in _PERMANENT_CONNECT_ERRORS):
            raise AirflowFailException(
                f"warehouse connection '{WAREHOUSE_CONN_ID}' refused: {message}") from None
        raise
    conn.row_factory = tuple_row  # whatever `cursor` the connection's extra names
    return conn


@contextlib.contextmanager
def warehouse_connection(autocommit: bool = False, *, migrate: bool = True) -> Iterator:
    """A psycopg 3 connection to the warehouse (migrated first unless `migrate=False`),
    committed on success, rolled back on error, closed on exit."""
    from psops.warehouse_migrations import ensure_migrated

    conn = _connect()
    try:
        if migrate:
            ensure_migrated(conn)
        conn.autocommit = autocommit
        yield conn
        if not autocommit:
            conn.commit()
    except BaseException:
        if not conn.closed and not autocommit:
            conn.rollback()
        raise
    finally:
        conn.close()


@contextlib.contextmanager
def analyst_connection() -> Iterator:
    """A warehouse connection that runs every statement as psops_analyst, read-only, with
    rows as dicts: what a page may read is what an analyst may read."""
    import psycopg
    from psycopg import sql
    from psycopg.rows import dict_row

    from psops.oncall import first_line

    try:
        conn = _connect()
    except Exception as err:  # noqa: BLE001 - any failure to connect is "unavailable" here
        raise WarehouseUnavailable(
            f"cannot connect to the warehouse (Airflow connection '{WAREHOUSE_CONN_ID}'): "
            f"{first_line(str(err), missing=type(err).__name__)}") from None
    try:
        conn.autocommit = True
        conn.row_factory = dict_row
        try:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(ANALYST_ROLE)))
        except psycopg.errors.InsufficientPrivilege:
            raise WarehouseUnavailable(
                f"the '{WAREHOUSE_CONN_ID}' connection's user may not SET ROLE {ANALYST_ROLE}; "
                f"GRANT {ANALYST_ROLE} TO that user") from None
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        conn.execute("SELECT set_config('statement_timeout', %s, false)",
                     (str(ANALYST_STATEMENT_TIMEOUT_MS),))
        conn.execute("SET timezone = 'UTC'")
        yield conn
    finally:
        conn.close()


def sqlalchemy_url() -> str:
    """postgresql+psycopg:// URL of the `warehouse` connection (for Great Expectations)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(warehouse_hook().get_uri())
    return urlunsplit(("postgresql+psycopg", parts.netloc, parts.path, "", ""))


def scalar(conn, query, params=None, default=None):
    """The one value a query returns (its first row's first column), or `default` when
    it returns no row."""
    from psycopg.rows import scalar_row

    with conn.cursor(row_factory=scalar_row) as cur:
        first = cur.execute(query, params).fetchmany(1)
    return first[0] if first else default
