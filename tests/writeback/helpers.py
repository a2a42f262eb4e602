"""Driving psops_writeback's steps in-process against a test warehouse and the sandbox."""

from __future__ import annotations

from collections import Counter
from datetime import date

import psycopg
from psycopg.rows import dict_row

from psops.writeback import steps
from tests.conftest import temporary_environment

AS_OF = date(2026, 3, 31)
ERP = "/services/rest/record/v1"


def warehouse(target):
    """The steps' warehouse (Airflow connection `warehouse`) is `target` inside this block."""
    return temporary_environment(AIRFLOW_CONN_WAREHOUSE=target.airflow_uri())


def run_writeback(target, *, digest: bool = False, run_id: str = "test") -> dict:
    """plan -> set up projects -> corrections (-> digest): the steps of psops_writeback."""
    with warehouse(target):
        plan = steps.plan(AS_OF, run_id)
        setup = steps.set_up_projects()
        corrections = steps.apply_corrections()
        result = {"plan": plan, "setup": setup, "corrections": corrections}
        if digest:
            result["digest"] = steps.send_digest(AS_OF, run_id, setup, corrections)
    return result


def plan_writes(target, run_id: str = "plan") -> dict:
    """Only the plan step (held corrections wait in a batch)."""
    with warehouse(target):
        return steps.plan(AS_OF, run_id)


def outbox_rows(target) -> dict[str, dict]:
    with psycopg.connect(target.conninfo(), row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM ops.outbox ORDER BY id").fetchall()
    return {row["idempotency_key"]: row for row in rows}


def applied_creates(sandbox) -> Counter:
    """Creates that reached a system (lost answers included), by what they create."""
    counts: Counter = Counter()
    for write in sandbox.writes():
        if write["method"] != "POST" or not (200 <= write["status"] < 300):
            continue
        body = write["body"] or {}
        if write["path"] == "/v2/projects":
            counts[("psa_project", body["crm_deal_id"])] += 1
        elif write["path"] == f"{ERP}/job":
            counts[("erp_job", body["entityId"])] += 1
        elif write["path"] == f"{ERP}/billingMilestone":
            counts[("erp_billing_line", body["externalId"])] += 1
    return counts


def records_in_sandbox(sandbox) -> Counter:
    """What the systems hold now: projects per deal, jobs per code, lines per milestone."""
    data = sandbox.dataset
    counts: Counter = Counter()
    for project in data.psa["projects"].all():
        if project.get("crm_deal_id"):
            counts[("psa_project", project["crm_deal_id"])] += 1
    for job in data.erp["job"].all():
        counts[("erp_job", job["entityId"])] += 1
    for line in data.erp["billingMilestone"].all():
        counts[("erp_billing_line", line["externalId"])] += 1
    return counts


def parked_approvals(listing: dict, marker: str) -> list[dict]:
    """The unanswered approval requests of a hitlDetails listing whose body names `marker`
    and whose task is parked awaiting input, as the Required actions page offers them.
    Answering before the task is parked races its park on a SQLite metadata DB (the
    answer is recorded, the task then parks and waits for ever)."""
    return [d for d in listing["hitl_details"]
            if not d["response_received"] and marker in (d["body"] or "")
            and d["task_instance"]["state"] == "awaiting_input"]
