"""The warehouse connection for tasks: PostgresHook on conn id `warehouse`, migrated on first use.

Errors a retry cannot fix (wrong credentials, missing database) fail the task at
once with AirflowFailException; an unreachable server is left to Airflow's retries.
"""

from __future__ import annotations

import contextlib
import logging

WAREHOUSE_CONN_ID = "warehouse"
log = logging.getLogger(__name__)

_PERMANENT_CONNECT_ERRORS = (
    "password authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
)


@contextlib.contextmanager
def warehouse_connection(autocommit: bool = False):
    """A psycopg 3 connection to the warehouse, migrated, closed on exit."""
    import psycopg
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.sdk.exceptions import AirflowFailException

    from psops.warehouse_migrations import ensure_migrated

    hook = PostgresHook(postgres_conn_id=WAREHOUSE_CONN_ID)
    try:
        conn = hook.get_conn()
    except psycopg.OperationalError as err:
        message = str(err).strip().splitlines()[-1] if str(err).strip() else repr(err)
        if any(marker in message for marker in _PERMANENT_CONNECT_ERRORS):
            raise AirflowFailException(
                f"warehouse connection '{WAREHOUSE_CONN_ID}' refused: {message}"
            ) from None
        raise
    try:
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
