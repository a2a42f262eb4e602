"""Builds one ingest DAG per connector spec: a task per stream, then the Asset.

Imported by the thin files dags/psops_ingest_<system>.py at parse time, so it
only reads the YAML spec and imports airflow.sdk; the engine, HTTP and
psycopg are imported inside the tasks.
"""

from __future__ import annotations

from airflow.sdk import Asset, dag, task

from psops.connectors.spec import ConnectorSpec, load_spec
from psops.dag_defaults import START_DATE, default_args


def ingest_doc(spec: ConnectorSpec) -> str:
    rows = "\n".join(
        f"| `{s.name}` | `{s.table}` | {s.paginator.type} | "
        f"{'full snapshot' if s.snapshot else f'incremental on `{s.cursor_field}`, {s.overlap_minutes} min overlap'} |"
        for s in spec.streams)
    return f"""
### psops_ingest_{spec.system}: {spec.title} → warehouse `raw`

Copies the {spec.title}'s records into the warehouse every day, one task per
stream, then marks the Asset `{spec.asset}` updated so that `psops_transform`
rebuilds the marts. Finance: nothing here changes a number by itself; it
brings in what the {spec.title} says today.

| stream | raw table | paging | sync |
|---|---|---|---|
{rows}

Connection: `{spec.conn_id}` (auth: {spec.auth}). Spec: `include/connectors/{spec.system}.yaml`.

**On call**: each stream's run is in `ops.ingest_runs` (pages, records,
retries, throttled, failed requests, error) and its watermark in
`ops.watermarks`; a stream loads in one transaction, so a failed run left
nothing half-loaded and re-running it is safe. Throttling and 5xx are retried
inside the task; a 401 (wrong credentials) or 400/404/422 (contract mismatch)
fails at once with the system's answer in the log: fix the connection or the
spec, then clear the task.
"""


def build_ingest_dag(system: str):
    spec = load_spec(system)

    @task
    def load_stream(stream_name: str, **context) -> dict:
        from psops.connectors.ingest_task import run_stream_task

        return run_stream_task(system, stream_name, context)

    @task
    def publish(results: list[dict]) -> str:
        from psops.connectors.ingest_task import publish_summary

        return publish_summary(system, results)

    @dag(
        dag_id=f"psops_ingest_{system}",
        schedule="@daily",
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        max_active_tasks=spec.max_active_streams or 16,
        default_args=default_args(),
        tags=["psops", "ingest", system],
        doc_md=ingest_doc(spec),
    )
    def ingest():
        results = [load_stream.override(task_id=stream.task_id)(stream.name)
                   for stream in spec.streams]
        publish.override(outlets=[Asset(spec.asset)])(results)

    return ingest()
