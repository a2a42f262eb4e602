"""What the ingest DAG's tasks run (imported inside the task, not at parse time)."""

from __future__ import annotations

import logging

from psops import catalogue
from psops.connectors.engine import StreamRun
from psops.dag_defaults import as_of_date
from psops.db import warehouse_connection

log = logging.getLogger(__name__)


def run_stream_task(system: str, stream_name: str, context) -> dict:
    spec = catalogue.system(system)
    with warehouse_connection(autocommit=True) as conn:
        result = StreamRun(
            spec, spec.stream(stream_name), conn,
            dag_id=context["dag"].dag_id, dag_run_id=context["run_id"],
            as_of=as_of_date(context),
        ).execute()
    return result.as_dict()


def publish_summary(system: str, results: list[dict]) -> str:
    records = sum(r["records"] for r in results)
    retries = sum(r["retries"] for r in results)
    throttled = sum(r["throttled"] for r in results)
    parts = ", ".join(f"{r['stream']} {r['records']:,}" for r in results)
    summary = (f"{system.upper()} ingest complete: {records:,} records in {len(results)} streams "
               f"({parts}); {retries} retries, {throttled} throttled. Raw data is fresh for "
               f"the transform.")
    log.info(summary)
    return summary
