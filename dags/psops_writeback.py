"""psops_writeback: deal-to-project set-up, corrections and the alert digest.
Never waits for a person: large corrections are handed to a run of
psops_approve_corrections. Each task takes its arguments from the Airflow context,
calls its step in psops.writeback.steps and turns a failed write or an undelivered
digest into a failed task (psops.writeback.tasks)."""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from psops.catalogue import request_pool, request_pools
from psops.dag_defaults import as_of_date, dag_arguments
from psops.settings import ALERTS_WEBHOOK_CONN_ID, MARTS_ASSET_URI

MARTS = Asset(MARTS_ASSET_URI)

# Their tasks call the ERP: they share its requests-in-flight pool with the ERP ingest.
ERP_POOL = request_pool("erp")
ERP_POOL_NOTE = (f"ERP writers share the pool `{ERP_POOL}` with the ERP ingest "
                 f"({request_pools()[ERP_POOL]} requests in flight at most)." if ERP_POOL else "")

DOC = f"""
### psops_writeback: pushing the fixes back to CRM, PSA and ERP

**What it does.** Runs after every marts build (`{MARTS_ASSET_URI}`). Every write goes
through the outbox `ops.outbox`: one row per intended write with an idempotency key
(`psa.project:deal:<id>`, `erp.job:<code>`, `crm.deal_link:<deal>`,
`erp.billing_line:milestone:<id>`, `psa.time_entry_rate:<entry>:<rate>@<updated_at>`),
status `pending` → `sent` → `confirmed` / `failed` (with the system's answer), `skipped`
(a rate fix whose time entry changed, was invoiced or was corrected by hand since the
plan) or `dead` (given up after `PSOPS_OUTBOX_MAX_ATTEMPTS` sends, listed in the digest). Before any
create the record is looked up (PSA `crm_deal_id`, ERP `eid:<externalId>`) and
adopted if it exists, so no run, retry, crash or re-run creates a second project,
job or billing line.

1. **plan_writes** - closed-won deals with a signed contract and no PSA project are
   validated (billing type, amount > 0, ERP customer, region); invalid ones go to
   `ops.exceptions` (`deal.setup_invalid`) and the alert. Corrections are computed
   (`include/sql/writeback/corrections.sql`): active projects without an ERP job,
   accepted fixed-fee milestones without a billing line, approved billable time at a
   rate other than the rate card. A project whose new corrections are worth more than
   `PSOPS_APPROVAL_THRESHOLD` (default 1,000, in the project's currency) waits for
   finance; the rest is approved automatically. Unanswered batches older than
   `PSOPS_APPROVAL_TIMEOUT_MINUTES` (default 1,440) are expired as rejected here.
2. **set_up_projects** - per deal, in order: PSA project, ERP job (entityId = code,
   externalId = PSA id), CRM `psa_project_id`. A failed step is retried (by Airflow's
   retry, then the next run) from that step.
3. **apply_corrections** - the approved corrections (also when a set-up write failed).
4. **send_alert_digest** - one chat message per run to `{ALERTS_WEBHOOK_CONN_ID}`: ready to
   bill, blocked by reason, new error exceptions, missing/late timesheets, invalid
   deals, approvals waiting, failed writes, what was written. Unchanged items are
   not repeated within 24 hours; nothing new = no message. Runs also when a write
   task failed (it lists the failed writes).
5. **hand_over_approvals** - when corrections were held: triggers
   `psops_approve_corrections` for the batch (this DAG does not wait).

**Finance.** What was approved by whom: `ops.correction_log`. Held corrections:
open the `psops_approve_corrections` run → *Required actions*.

**On call.** A `failed` outbox row keeps the system's answer in `response_body`. When
a write of set_up_projects or apply_corrections ends `failed`, the task records every
other write first and then fails: red in the UI, retried by Airflow (lookup first, so
a confirmed write is never sent again) and posted to `{ALERTS_WEBHOOK_CONN_ID}` once its retries
are used up; summary is then `upstream_failed`. A digest the webhook did not take
fails send_alert_digest the same way (its items are not marked as alerted, so the
retry or the next run sends them). 4xx answers are a contract problem: fix and let the
next run retry. Re-running this DAG is always safe. {ERP_POOL_NOTE}
"""


@dag(
    dag_id="psops_writeback",
    schedule=[MARTS],
    **dag_arguments(),
    max_active_runs=1,
    doc_md=DOC,
    tags=["psops", "writeback", "alerts", "finance"],
)
def psops_writeback():
    @task
    def plan_writes() -> dict:
        from psops.writeback import steps

        context = get_current_context()
        return steps.plan(as_of_date(context), context["run_id"])

    @task(pool=ERP_POOL)
    def set_up_projects(plan: dict) -> dict:
        from psops.writeback import steps, tasks

        context = get_current_context()
        result = steps.set_up_projects(earlier_tries_since=tasks.earlier_tries_since(context))
        return tasks.fail_if_writes_failed(result, context["ti"])

    @task(pool=ERP_POOL, trigger_rule="all_done")  # also after a failed set-up write
    def apply_corrections(plan: dict | None) -> dict:
        if plan is None:
            raise AirflowSkipException("plan_writes did not succeed: no corrections applied")
        from psops.writeback import steps, tasks

        context = get_current_context()
        result = steps.apply_corrections(earlier_tries_since=tasks.earlier_tries_since(context))
        return tasks.fail_if_writes_failed(result, context["ti"])

    @task(trigger_rule="all_done")  # the digest lists the writes that failed
    def send_alert_digest(setup: dict | None, corrections: dict | None) -> dict:
        from psops.writeback import steps, tasks

        context = get_current_context()
        digest = steps.send_digest(as_of_date(context), context["run_id"], setup, corrections)
        return tasks.fail_if_digest_failed(digest, context["ti"])

    @task
    def summary(plan: dict, setup: dict, corrections: dict, digest: dict) -> str:
        from psops.writeback import steps

        return steps.run_summary(plan, setup, corrections, digest)

    @task.short_circuit
    def corrections_held(plan: dict) -> bool:
        return bool(plan.get("batch_id"))

    plan = plan_writes()
    setup = set_up_projects(plan)
    corrections = apply_corrections(plan)
    setup >> corrections
    digest = send_alert_digest(setup, corrections)
    summary(plan, setup, corrections, digest)

    corrections_held(plan) >> hand_over_approvals()


def hand_over_approvals() -> TriggerDagRunOperator:
    """Triggers psops_approve_corrections for the batch plan_writes held; does not wait."""
    batch_id = "{{ ti.xcom_pull(task_ids='plan_writes')['batch_id'] }}"
    return TriggerDagRunOperator(
        task_id="hand_over_approvals",
        trigger_dag_id="psops_approve_corrections",
        trigger_run_id=f"approve__{batch_id}",
        conf={"batch_id": batch_id},
        wait_for_completion=False,
        skip_when_already_exists=True,
    )


psops_writeback()
