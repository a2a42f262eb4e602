"""The ingest step: one stream of one system into raw, as a plain function (the ingest
DAG's task is the adapter that takes its arguments from the Airflow context; tests and
benchmarks call it directly). Imported inside the task, not at parse time."""

from __future__ import annotations

import logging
from datetime import date

from psops import catalogue
from psops.connectors.engine import StreamRun
from psops.db import warehouse_connection

log = logging.getLogger(__name__)


def run_stream(system: str, stream_name: str, *, dag_id: str, dag_run_id: str,
               as_of: date) -> dict:
    """Load the stream into raw.<system>_<stream> on the `warehouse` connection; the
    run's metrics (StreamResult) as a dict."""
    spec = catalogue.system(system)
    with warehouse_connection(autocommit=True) as conn:
        result = StreamRun(spec, spec.stream(stream_name), conn, dag_id=dag_id,
                           dag_run_id=dag_run_id, as_of=as_of).execute()
    return result.as_dict()


def publish_summary(system: str, results: list[dict]) -> str:
    records = sum(r["records"] for r in results)
    retries = sum(r["retries"] for r in results)
    throttled = sum(r["throttled"] for r in results)
    rejected = sum(r.get("rejected", 0) for r in results)
    parts = ", ".join(f"{r['stream']} {r['records']:,}" for r in results)
    rejects = (f" {rejected:,} records rejected (not loadable as they are: see "
               f"ops.ingest_rejects and the exception queue)." if rejected else "")
    summary = (f"{system.upper()} ingest complete: {records:,} records in {len(results)} streams "
               f"({parts}); {retries} retries, {throttled} throttled.{rejects} Raw data is fresh "
               f"for the transform.")
    log.info(summary)
    return summary
