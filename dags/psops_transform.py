"""psops_transform: raw -> quality gates -> curated -> marts (logic: plugins/psops/transform)."""

from __future__ import annotations

from datetime import date

from airflow.sdk import (
    Asset,
    AssetAll,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    dag,
    get_current_context,
    task,
)

from psops.catalogue import raw_asset_uris
from psops.dag_defaults import dag_arguments
from psops.oncall import marts_deadline_alert
from psops.settings import MARTS_ASSET_URI, TRANSFORM_CUTOFF_CRON

RAW_ASSETS = [Asset(uri) for uri in raw_asset_uris()]
MARTS = Asset(MARTS_ASSET_URI)

DOC = f"""
### psops_transform: the numbers finance and delivery read

**When it runs.** When **every** source system has been ingested since its last
run (each `psops_ingest_*` DAG updates its raw Asset ({', '.join(f'`{uri}`' for uri in raw_asset_uris())}) once all its
streams loaded): the marts of a day are computed on fresh data from every system.
So that one slow or broken system cannot freeze the marts for a day, it also runs
at the daily **cut-off** (`PSOPS_TRANSFORM_CUTOFF_CRON`, default `0 6 * * *`, UTC):
that run goes ahead only when some source brought data the marts do not include yet,
logs (as a warning) which systems delivered nothing for the day, and uses their last
good load; it is skipped when the marts are already current or nothing was ever
ingested. A run triggered by hand or through the REST API always goes ahead.

**What it does.** It takes the latest version of every record loaded so far, checks
it, and republishes the marts for the run's **as-of date** (the logical date, or the
trigger time for Asset-triggered runs, in UTC):

0. **sources_ready** - the cut-off decision above (skips the rest when not needed).
1. **stage_records** - raw JSON to typed records (only what was loaded since the
   last run; HRIS from its latest complete snapshot).
2. **quality_gates** - every rule of `include/quality_rules.yaml`. Records failing
   an *error* rule are quarantined (left out of every number) and listed in
   `ops.exceptions`; warnings are listed but kept. A problem that is fixed at the
   source is marked `resolved` on the next run. Great Expectations validates the
   records changed since the last publish (the whole tables after a full mark and
   once a week); Data Docs are written to `$PSOPS_DATA_DOCS_DIR` (default
   `build/data_docs`).
3. **publish_marts** - `curated.*` (only the records changed or newly quarantined or
   released since the last publish; every row after a migration, a large load, or when
   triggered with the param `full_rebuild`) and, for the as-of date only,
   `marts.utilization_weekly`, `marts.timesheet_compliance`,
   `marts.billing_readiness` (+ `marts.billing_readiness_blockers`: each blocked
   item -> reason -> the record to fix), `marts.process_kpis`,
   `marts.project_margin`, in one transaction.
4. **summary** - one line: ready/blocked amounts, utilization, open exceptions; then
   updates the `{MARTS_ASSET_URI}` Asset (psops_writeback runs on it).

**Finance.** Read marts for one `as_of`. A `blocked` billing row lists its reasons;
`marts.billing_readiness_blockers` names the milestone / time entry / expense /
purchase order / change request behind each. Quarantined records are in
`ops.exceptions` (status `open`, severity `error`).

**On call.** If `quality_gates` fails with "critical: ...", nothing was published,
no exception row of that check was kept and yesterday's marts stay as they were: either the HRIS employee snapshot is empty or a
curated table would shrink by more than half against the last good run - usually a
broken or partial ingest. Check the latest `psops_ingest_*` runs and `ops.ingest_runs`,
re-run the ingest, then clear this DAG run. Retrying without fixing the source does
not help (the task fails without retries). Other failures (warehouse unreachable) are
retried. Re-running for the same date is safe: marts of that date are replaced. A
step that waits more than `PSOPS_RUN_LOCK_TIMEOUT_SECONDS` for another transform's lock
fails saying so; a run killed mid-way is marked `abandoned` in `ops.transform_runs` by
the next one.
"""


@dag(
    dag_id="psops_transform",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(TRANSFORM_CUTOFF_CRON.text(), timezone="UTC"),
        assets=AssetAll(*RAW_ASSETS),
    ),
    **dag_arguments(),
    max_active_runs=1,
    deadline=marts_deadline_alert(),
    doc_md=DOC,
    params={"full_rebuild": Param(
        False, type="boolean", title="Full rebuild of curated",
        description="Compare every curated row with staging, not only the records "
                    "changed since the last publish (both give the same tables).")},
    tags=["psops", "transform", "quality", "marts"],
)
def psops_transform():
    # Thin adapters: the Airflow context -> the step's arguments (psops.transform.steps),
    # a failed critical gate -> AirflowFailException (a retry cannot fix data).
    @task.short_circuit
    def sources_ready() -> bool:
        from psops.dag_defaults import as_of_date
        from psops.transform.freshness import sources_ready

        context = get_current_context()
        run_type = context["dag_run"].run_type
        return sources_ready(str(getattr(run_type, "value", run_type)), as_of_date(context))

    @task
    def stage_records() -> dict:
        from psops.dag_defaults import as_of_date
        from psops.transform import steps

        context = get_current_context()
        as_of = as_of_date(context)
        staged = steps.stage(as_of, context["dag_run"].run_id)
        return {"transform_run_id": staged.run_id, "as_of": as_of.isoformat(),
                "summary": staged.summary}

    @task
    def quality_gates(staged: dict) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from psops.transform import steps
        from psops.transform.quality import CriticalGateFailed

        as_of = date.fromisoformat(staged["as_of"])
        try:
            report = steps.check_quality(as_of, staged["transform_run_id"], with_gx=True)
        except CriticalGateFailed as failure:
            raise AirflowFailException(str(failure)) from None
        return {**staged, "summary": steps.gate_summary(report)}

    @task
    def publish_marts(gated: dict) -> dict:
        from psops.transform import steps

        as_of = date.fromisoformat(gated["as_of"])
        full = bool(get_current_context()["params"].get("full_rebuild"))
        counts = steps.publish(as_of, gated["transform_run_id"], full=full)
        return {**gated, "summary": steps.publish_summary(as_of, counts)}

    @task(outlets=[MARTS])
    def summary(published: dict) -> str:
        from psops.transform import steps

        return steps.summary(published["transform_run_id"])

    staged = stage_records()
    sources_ready() >> staged
    summary(publish_marts(quality_gates(staged)))


psops_transform()
