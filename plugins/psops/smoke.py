"""The smoke check: one row written to the warehouse and read back."""

from __future__ import annotations

import logging
import uuid

from psycopg.rows import scalar_row

from psops.db import warehouse_connection

log = logging.getLogger(__name__)


def write_and_read_back(dag_run_id: str) -> str:
    token = uuid.uuid4().hex
    with warehouse_connection() as conn:
        conn.execute(
            "INSERT INTO ops.smoke_checks (dag_run_id, token) VALUES (%s, %s)", (dag_run_id, token)
        )
        read_back = conn.cursor(row_factory=scalar_row).execute(
            "SELECT token FROM ops.smoke_checks WHERE dag_run_id = %s ORDER BY id DESC LIMIT 1",
            (dag_run_id,),
        ).fetchone()
    if read_back != token:
        raise RuntimeError(f"smoke check: wrote token {token} but read back {read_back!r}")
    summary = f"Warehouse smoke check passed: wrote and read back token {token}."
    log.info(summary)
    return summary
