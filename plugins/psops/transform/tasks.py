"""What the psops_transform DAG's tasks do, Airflow side: open the warehouse through
the `warehouse` connection, call the runner, turn a failed critical gate into
AirflowFailException (a retry cannot fix data), log and return a one-line summary.
Airflow is imported inside the functions: this module is import-light."""

from __future__ import annotations

import logging
from datetime import date
from urllib.parse import urlsplit, urlunsplit

from psops.transform import runner
from psops.transform.quality import CriticalGateFailed

log = logging.getLogger(__name__)


def _as_of(context) -> date:
    from psops.dag_defaults import as_of_date

    return as_of_date(context)


def warehouse_sqlalchemy_url() -> str:
    """postgresql+psycopg:// URL of the `warehouse` connection, for GX."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from psops.transform.gx_validation import sqlalchemy_url
    from psops.warehouse_hook import WAREHOUSE_CONN_ID

    parts = urlsplit(PostgresHook(postgres_conn_id=WAREHOUSE_CONN_ID).get_uri())
    return sqlalchemy_url(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))


def stage_task(context) -> dict:
    from psops.warehouse_hook import warehouse_connection

    as_of = _as_of(context)
    dag_run = context.get("dag_run")
    with warehouse_connection(autocommit=True) as conn:
        run_id = runner.start_run(conn, as_of, getattr(dag_run, "run_id", None))
        line = runner.stage(conn, run_id)
    log.info("%s", line)
    return {"transform_run_id": run_id, "as_of": as_of.isoformat(), "summary": line}


def quality_task(staged: dict) -> dict:
    from airflow.sdk.exceptions import AirflowFailException

    from psops.warehouse_hook import warehouse_connection

    as_of = date.fromisoformat(staged["as_of"])
    run_id = staged["transform_run_id"]
    with warehouse_connection(autocommit=True) as conn:
        try:
            report = runner.check_quality(conn, as_of, run_id, gx_url=warehouse_sqlalchemy_url())
        except CriticalGateFailed as failure:
            log.error("%s", failure)
            raise AirflowFailException(str(failure)) from None
    line = runner.gate_summary(report)
    log.info("%s (Data Docs: %s)", line, runner.data_docs_dir())
    return {**staged, "summary": line}


def publish_task(gated: dict) -> dict:
    from psops.warehouse_hook import warehouse_connection

    as_of = date.fromisoformat(gated["as_of"])
    with warehouse_connection(autocommit=True) as conn:
        counts = runner.publish(conn, as_of, gated["transform_run_id"])
    line = f"curated and marts published for {as_of}: " + ", ".join(
        f"{table.split('.')[1]} {n}" for table, n in counts.items()
    ) + " rows"
    log.info("%s", line)
    return {**gated, "summary": line}


def summary_task(published: dict) -> str:
    from psops.warehouse_hook import warehouse_connection

    with warehouse_connection(autocommit=True) as conn:
        line = runner.summary(conn, published["transform_run_id"])
    log.info("%s", line)
    return line
