"""Builds one ingest DAG per connector spec: a task per stream, then the Asset.

Imported by the thin files dags/psops_ingest_<system>.py at parse time, so it
only reads the YAML spec (through psops.catalogue) and imports airflow.sdk; the
engine, HTTP and psycopg are imported inside the tasks.
"""

from __future__ import annotations

from airflow.sdk import Asset, dag, task

from psops import catalogue
from psops.connectors.spec import ConnectorSpec
from psops.dag_defaults import as_of_date, dag_arguments
from psops.oncall import sources_deadline_alert
from psops.settings import INGEST_SCHEDULE


def ingest_schedule() -> str | None:
    """`PSOPS_INGEST_SCHEDULE` (a cron expression or preset, default `@daily`); `none` when
    something outside Airflow triggers the ingests (REST API, tests)."""
    value = INGEST_SCHEDULE.text()
    return None if value.lower() == "none" else value


def ingest_doc(spec: ConnectorSpec) -> str:
    pool = catalogue.request_pool(spec.system)
    pool_note = (f" Stream tasks share the Airflow pool `{pool}` with every "
                 f"other task calling the {spec.title}." if pool else "")
    rows = "\n".join(
        f"| `{s.name}` | `{s.table}` | {s.paginator.type} | "
        f"{'full snapshot' if s.snapshot else f'incremental on `{s.cursor_field}`, {s.overlap_minutes} min overlap'} |"
        for s in spec.streams)
    return f"""
### {catalogue.ingest_dag_id(spec.system)}: {spec.title} → warehouse `raw`

Copies the {spec.title}'s records into the warehouse on its schedule
(`PSOPS_INGEST_SCHEDULE`, default daily), one task per stream, then marks the Asset `{spec.asset}` updated so that `psops_transform`
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
spec, then clear the task. Records that cannot be loaded as they are (a NUL
character, invalid JSON such as NaN, not a JSON object, no key) do not fail the
stream: they are in `ops.ingest_rejects` and the exception queue
(`<entity>.ingest_rejected`), counted in the run's summary. Two runs of one stream
never overlap (a run lock; one waiting more than `PSOPS_RUN_LOCK_TIMEOUT_SECONDS`
fails saying so); a run whose process was killed is marked `abandoned` by the next.
A task that fails for good posts to `alerts_webhook` (DAG, task, run, try, error,
log link); a day's run not complete by
`PSOPS_SOURCES_DUE_HOURS` (default 6) after midnight UTC posts "data for <day> not
loaded" there too.{pool_note}
"""


def build_ingest_dag(system: str):
    spec = catalogue.system(system)

    @task
    def load_stream(stream_name: str, **context) -> dict:
        from psops.connectors.ingest_task import run_stream

        return run_stream(system, stream_name, dag_id=context["dag"].dag_id,
                          dag_run_id=context["run_id"], as_of=as_of_date(context))

    @task
    def publish(results: list[dict]) -> str:
        from psops.connectors.ingest_task import publish_summary

        return publish_summary(system, results)

    @dag(
        dag_id=catalogue.ingest_dag_id(system),
        schedule=ingest_schedule(),
        **dag_arguments(),
        max_active_runs=1,
        max_active_tasks=spec.max_requests_in_flight or 16,
        deadline=sources_deadline_alert(system),
        tags=["psops", "ingest", system],
        doc_md=ingest_doc(spec),
    )
    def ingest():
        pool = catalogue.request_pool(system)
        pool_args = {"pool": pool} if pool else {}
        results = [load_stream.override(task_id=stream.task_id, **pool_args)(stream.name)
                   for stream in spec.streams]
        publish.override(outlets=[Asset(spec.asset)])(results)

    return ingest()
