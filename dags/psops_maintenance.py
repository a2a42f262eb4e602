"""psops_maintenance: daily housekeeping of the warehouse (logic: plugins/psops/retention.py)."""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, dag, task

from psops.dag_defaults import dag_arguments

MAINTENANCE_CRON = "0 3 * * *"  # UTC: after the daily ingest, before the transform's cut-off

DOC = f"""
### psops_maintenance: keep the raw tables from growing without bound

**When it runs.** Daily at `{MAINTENANCE_CRON}` (UTC), on its own schedule (no Asset):
nothing waits for it and it waits for nothing. A run triggered by hand does the same.

**What it deletes.** The raw tables (`raw.<system>_<stream>`, one per stream of
`include/connectors/*.yaml`) keep every copy of every record ever loaded. **prune_raw_history**
deletes a raw row when it was loaded more than **N days** ago **and** it is not its record's
latest version, the latest being what the transform reads:
- incremental streams (CRM, PSA, ERP): the copy with the latest update time (then the
  latest load) of each record, and any copy loaded after it whose update time could not
  be read (it keeps the record quarantined by `<entity>.version_time_unparseable` until a
  readable version arrives);
- snapshot streams (HRIS): every row of the stream's latest succeeded run (none is deleted
  while the stream has no succeeded run).

So every record keeps its latest version however old it is, plus N days of history, and
the transform publishes the same curated tables and marts after a run as before it.
Curated, marts, `ops.*` and the exception queue are not touched.

**How to change N.** `PSOPS_RAW_RETENTION_DAYS` (default `90`, whole days; `0` keeps only
the latest versions), in the environment of the workers; the next run uses it. To stop
the retention, pause this DAG.

**What it reports.** The task log and its returned value list, per raw table, how many
rows were deleted and how many are kept; the same is in `ops.maintenance_runs` (one row
per run: N, cut-off, `tables`, totals, status).

**On call.** A failure leaves the tables already pruned pruned (each table is one
transaction, recorded in `ops.maintenance_runs` as it goes) and the others untouched:
nothing downstream depends on this DAG, so it can wait for the morning. A wrong
`PSOPS_RAW_RETENTION_DAYS` fails at once (not a whole number of days: fix the setting);
anything else (the warehouse unreachable) is retried. The error is in the task log and
in `ops.maintenance_runs.error`; clear the run once fixed.
"""


@dag(
    dag_id="psops_maintenance",
    schedule=CronTriggerTimetable(MAINTENANCE_CRON, timezone="UTC"),
    **dag_arguments(),
    max_active_runs=1,
    doc_md=DOC,
    tags=["psops", "ops", "maintenance"],
)
def psops_maintenance():
    # Thin adapter: the run id -> the step; a wrong setting -> AirflowFailException
    # (a retry cannot fix it).
    @task
    def prune_raw_history(**context) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from psops.retention import RetentionError, run_raw_retention

        try:
            return run_raw_retention(context["run_id"]).as_dict()
        except RetentionError as err:
            raise AirflowFailException(str(err)) from None

    prune_raw_history()


psops_maintenance()
