"""The steps of psops_writeback and psops_approve_corrections, as plain functions.

The DAGs' tasks call them with arguments taken from the task context; tests call the
same functions. Each opens the warehouse through psops.db.warehouse_connection and
returns a JSON-able dict whose `summary` is the line it logs last. A step records
everything (outbox rows, ops.alert_digests) and reports what went wrong in its result
(`failed` writes, digest status `failed`); failing the task for it is the task's part
(psops.writeback.tasks).

`earlier_tries_since`: on a retried task, when its DAG run began. The result then also
lists what earlier tries of the run confirmed (their XCom is gone), so the digest still
names every write; a write the approval DAG confirmed meanwhile may show up there too.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

from psops.db import warehouse_connection
from psops.formatting import worth_text
from psops.writeback import alerts, approval, delivery, outbox, planner
from psops.writeback.source_writes import SourceWrites

log = logging.getLogger(__name__)


def _count(items: list[dict], kind: str | None = None) -> int:
    return sum(1 for item in items if kind is None or item["kind"] == kind)


def _finish(result: dict) -> dict:
    log.info("%s", result["summary"])
    return result


# -- psops_writeback ----------------------------------------------------------------

def plan(as_of: date, dag_run_id: str | None) -> dict:
    """Expire stale approval batches, plan deal set-ups and corrections into the outbox."""
    with warehouse_connection(autocommit=True) as conn:
        planned = planner.plan_writes(conn, SourceWrites(), as_of, dag_run_id)
    result = planned.as_dict()
    result["threshold"] = float(approval.threshold())
    setups = ", ".join(f"{s['deal_id']}->{s['project_code']}" for s in planned.new_setups)
    invalid = ", ".join(d["deal_id"] for d in planned.invalid_deals)
    held_worth = worth_text(planned.held_corrections)
    result["summary"] = (
        f"write-back plan for {as_of}: {len(planned.new_setups)} deals to set up "
        f"({setups or 'none'}), {len(planned.invalid_deals)} deals invalid ({invalid or 'none'}); "
        f"{len(planned.auto_corrections)} corrections approved automatically, "
        f"{len(planned.held_corrections)} worth {held_worth} held for finance"
        + (f" (batch {planned.batch_id})" if planned.batch_id else "")
        + (f"; expired unanswered batches {', '.join(planned.expired_batches)}"
           if planned.expired_batches else ""))
    return _finish(result)


def _apply(purpose: str, batch_id: str | None = None,
           earlier_tries_since: datetime | None = None) -> outbox.ApplyReport:
    """Send the sendable rows; first, the rows whose record is no longer what the plan saw
    (a rate fix's time entry re-read from the PSA) are `skipped` (report.skipped)."""
    writes = SourceWrites()
    with warehouse_connection(autocommit=True) as conn:
        skipped = outbox.skip_stale(conn, lambda row: delivery.reason_to_skip(writes, row),
                                    purpose=purpose, batch_id=batch_id)
        report = outbox.apply_outbox(conn, writes, purpose=purpose, batch_id=batch_id)
        report.skipped = skipped
        if earlier_tries_since is not None:
            seen = {c["key"] for c in report.confirmed}
            earlier = [c for c in outbox.confirmed_since(conn, earlier_tries_since,
                                                         purpose=purpose, batch_id=batch_id)
                       if c["key"] not in seen]
            if earlier:
                log.info("%d writes were confirmed by earlier tries of this run", len(earlier))
            report.confirmed = earlier + report.confirmed
    log.info("API requests: %s", writes.metrics())
    return report


def set_up_projects(*, earlier_tries_since: datetime | None = None) -> dict:
    """Send the deal set-up rows: PSA project, ERP job, CRM link, in order per deal."""
    report = _apply("deal_setup", earlier_tries_since=earlier_tries_since)
    result = report.as_dict()
    projects = [c for c in report.confirmed if c["kind"] == "psa_project"]
    created = ", ".join(f"{p['project_code']} = {p['remote_id']}" for p in projects)
    result["summary"] = (
        f"deal-to-project set-up: {len(projects)} PSA projects ({created or 'none'}), "
        f"{_count(report.confirmed, 'erp_job')} ERP jobs, "
        f"{_count(report.confirmed, 'crm_deal_link')} CRM deals linked; "
        f"{sum(1 for c in report.confirmed if c['note'] == 'adopted')} adopted after a lost answer; "
        f"{len(report.failed)} failed (retried), {len(report.waiting)} waiting on an earlier step")
    return _finish(result)


def apply_corrections(*, earlier_tries_since: datetime | None = None) -> dict:
    """Send the approved corrections (automatic or decided earlier)."""
    report = _apply("correction", earlier_tries_since=earlier_tries_since)
    result = report.as_dict()
    worth = worth_text(report.confirmed)
    result["summary"] = (
        f"corrections applied: {len(report.confirmed)} worth {worth} "
        f"({_count(report.confirmed, 'erp_job')} ERP jobs, "
        f"{_count(report.confirmed, 'erp_billing_line')} billing lines, "
        f"{_count(report.confirmed, 'psa_time_entry_rate')} rate fixes); "
        f"{len(report.skipped)} skipped (changed since the plan), "
        f"{len(report.failed)} failed (retried), {len(report.waiting)} waiting")
    return _finish(result)


def send_digest(as_of: date, dag_run_id: str | None, setup: dict | None,
                corrections: dict | None) -> dict:
    """The alert digest; `setup` / `corrections` are those steps' results (None: the
    step did not run or left no result)."""
    confirmed = [*((setup or {}).get("confirmed") or []),
                 *((corrections or {}).get("confirmed") or [])]
    with warehouse_connection(autocommit=True) as conn:
        digest = alerts.send_digest(conn, as_of, {"confirmed": confirmed}, dag_run_id)
    digest["summary"] = (
        f"alert digest {digest['status']}: {digest['items']} new items to {digest['destination']}"
        + (f" ({digest['text']})" if digest.get("text") else "")
        + (f"; error: {digest['error']}" if digest.get("error") else ""))
    return _finish(digest)


def run_summary(plan: dict, setup: dict, corrections: dict, digest: dict) -> str:
    jobs = _count(setup["confirmed"], "erp_job") + _count(corrections["confirmed"], "erp_job")
    line = (
        f"psops_writeback {plan['as_of']}: created "
        f"{_count(setup['confirmed'], 'psa_project')} projects, {jobs} ERP jobs, "
        f"{_count(corrections['confirmed'], 'erp_billing_line')} billing lines; "
        f"{_count(corrections['confirmed'], 'psa_time_entry_rate')} rates corrected, "
        f"{len(corrections.get('skipped') or [])} writes skipped (changed since the plan); "
        f"{len(plan['held_corrections'])} corrections awaiting finance"
        + (f" (batch {plan['batch_id']})" if plan.get("batch_id") else "")
        + f"; {len(setup['failed']) + len(corrections['failed'])} writes failed; "
        f"alert {digest['status']} to {digest['destination']}")
    log.info("%s", line)
    return line


# -- psops_approve_corrections ------------------------------------------------------

def describe_batch(batch_id: str | None) -> dict:
    """What finance is asked about one batch (the oldest waiting one when None)."""
    with warehouse_connection(autocommit=True) as conn:
        return _finish(approval.describe_batch(conn, batch_id))


def decide_batch(described: dict, answer: dict | None, approval_run_id: str, *,
                 earlier_tries_since: datetime | None = None) -> dict:
    """Record finance's answer (None: no answer) and apply the approved corrections."""
    with warehouse_connection(autocommit=True) as conn:
        outcome = approval.record_decision(conn, described, answer, approval_run_id)
    decided = (f"batch {outcome['batch_id'] or '-'} {outcome['decision']} by "
               f"{outcome['decided_by']}")
    if not outcome["apply"]:
        return _finish({**outcome, **outbox.ApplyReport().as_dict(),
                        "summary": outcome.get("too_late")
                        or f"{decided}: {outcome['rows']} corrections not applied"})
    report = _apply("correction", outcome["batch_id"], earlier_tries_since)
    worth = worth_text(report.confirmed)
    return _finish({
        **outcome, **report.as_dict(),
        "summary": f"{decided}: {len(report.confirmed)} corrections applied worth {worth}, "
                   f"{len(report.skipped)} skipped (changed since the plan), "
                   f"{len(report.failed)} failed (retried by Airflow and the next psops_writeback), "
                   f"{len(report.waiting)} waiting"})
