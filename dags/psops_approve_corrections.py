"""psops_approve_corrections: finance approves or rejects large corrections in the
Airflow UI (human-in-the-loop), then the approved ones are applied. Each task takes its
arguments from the Airflow context and calls its step in psops.writeback.steps (the
approval lifecycle: plugins/psops/writeback/approval.py)."""

from __future__ import annotations

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, dag, get_current_context, task

from psops.catalogue import request_pool
from psops.dag_defaults import dag_arguments
from psops.finance_access import hitl_assignees
from psops.settings import APPROVAL_TIMEOUT_MINUTES
from psops.writeback import decisions

APPROVAL_TIMEOUT = APPROVAL_TIMEOUT_MINUTES.minutes()

# Their tasks call the ERP: they share its requests-in-flight pool with the ERP ingest.
ERP_POOL = request_pool("erp")

DOC = """
### psops_approve_corrections: finance decides on large corrections

**Why.** psops_writeback applies small corrections at once, but when one project's
corrections in a run change billable money by more than the threshold
(`PSOPS_APPROVAL_THRESHOLD`, default 1,000) it holds them as a batch and triggers
this DAG with `{"batch_id": ...}` (without it, the oldest waiting batch is shown).
The threshold counts the project's corrections approved within the last
`PSOPS_APPROVAL_WINDOW_DAYS` (default 7) too, so a daily trickle is held once it adds up.

**Finance: how to decide.** Open this run → the task **finance_approval** (or the
*Required actions* page, badge in the top bar). The subject names the batch's
projects and total; the body is a table of every change (project, what changes,
worth). Click **Approve** to write them to the PSA / ERP, or **Reject** to discard
them. To approve all but some projects, type their codes in *reject_projects*
(comma-separated) and Approve. Only the Airflow users in `PSOPS_FINANCE_USERS`
(default `finance`; Airflow role `user` or above) can answer: anyone else gets 403.
No answer within `PSOPS_APPROVAL_TIMEOUT_MINUTES`
(default 24 h) = rejected (expired). Every decision, with your user name, is in
`ops.correction_log`; the outbox rows carry `decided_by`. An answer given after the
batch expired (or after someone else decided it) is refused: **apply_decision** fails
with "Too late: approval batch … expired at …; nothing was recorded and nothing was
applied", and nothing is written.

**On call.** `apply_decision` applies approved changes through the same outbox as
psops_writeback (exactly once, lookup before every create). When a write ends
`failed`, the task fails after recording every write (red here, one message to
`alerts_webhook`); Airflow's retry, or the next psops_writeback run, sends only what is
not confirmed. Under `airflow dags test` the approval task waits until answered through the
UI or the REST API (`PATCH /api/v2/dags/psops_approve_corrections/dagRuns/<run>/
taskInstances/finance_approval/-1/hitlDetails`); psops_writeback expires stale
batches on its own, so nothing depends on the scheduler for expiry.
"""


@dag(
    dag_id="psops_approve_corrections",
    schedule=None,
    **dag_arguments(waits_for=APPROVAL_TIMEOUT),
    doc_md=DOC,
    params={"batch_id": Param(None, type=["null", "string"],
                              description="approval batch (ops.approval_batches)")},
    tags=["psops", "writeback", "approval", "finance"],
)
def psops_approve_corrections():
    @task
    def describe_batch() -> dict:
        from psops.writeback import steps

        context = get_current_context()
        batch_id = (context.get("params") or {}).get("batch_id") or \
            (context["dag_run"].conf or {}).get("batch_id")
        return steps.describe_batch(batch_id)

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def needs_decision(described: dict) -> bool:
        return bool(described.get("pending"))

    finance_approval = HITLOperator(
        task_id="finance_approval",
        subject="{{ ti.xcom_pull(task_ids='describe_batch')['subject'] }}",
        body="{{ ti.xcom_pull(task_ids='describe_batch')['body'] }}",
        options=list(decisions.OPTIONS),
        defaults=[decisions.DEFAULT],
        multiple=False,
        params={"reject_projects": Param("", type="string",
                                         description="project codes to reject (comma-separated)")},
        response_timeout=APPROVAL_TIMEOUT,
        assigned_users=hitl_assignees(),
    )

    @task(trigger_rule="all_done", pool=ERP_POOL)
    def apply_decision(described: dict) -> str:
        from psops.writeback import steps, tasks

        context = get_current_context()
        answer = context["ti"].xcom_pull(task_ids="finance_approval")
        result = steps.decide_batch(described, answer, context["run_id"],
                                    earlier_tries_since=tasks.earlier_tries_since(context))
        return tasks.fail_if_writes_failed(tasks.fail_if_too_late(result))["summary"]

    described = describe_batch()
    needs_decision(described) >> finance_approval >> apply_decision(described)


psops_approve_corrections()
