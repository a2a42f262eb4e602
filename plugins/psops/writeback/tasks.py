"""What the tasks of psops_writeback and psops_approve_corrections call.

Each returns a JSON-able dict whose `summary` is the one line the task logs last.
"""

from __future__ import annotations

import logging

from psops.dag_defaults import as_of_date
from psops.warehouse_hook import warehouse_connection
from psops.writeback import alerts, approval, outbox, planner
from psops.writeback.source_writes import SourceWrites

log = logging.getLogger(__name__)


def _finish(result: dict) -> dict:
    log.info("%s", result["summary"])
    return result


def _count(items: list, kind: str | None = None) -> int:
    return sum(1 for i in items if kind is None or i["kind"] == kind)


def plan_task(context) -> dict:
    as_of = as_of_date(context)
    with warehouse_connection(autocommit=True) as conn:
        plan = planner.plan_writes(conn, SourceWrites(), as_of, context["run_id"])
    result = plan.as_dict()
    result["threshold"] = float(planner.approval_threshold())
    held_worth = sum(c["worth"] for c in plan.held_corrections)
    result["summary"] = (
        f"write-back plan for {as_of}: {len(plan.new_setups)} deals to set up "
        f"({', '.join(s['deal_id'] + '->' + s['project_code'] for s in plan.new_setups) or 'none'}), "
        f"{len(plan.invalid_deals)} deals invalid ({', '.join(d['deal_id'] for d in plan.invalid_deals) or 'none'}); "
        f"{len(plan.auto_corrections)} corrections approved automatically, "
        f"{len(plan.held_corrections)} worth {held_worth:,.2f} held for finance"
        + (f" (batch {plan.batch_id})" if plan.batch_id else "")
        + (f"; expired unanswered batches {', '.join(plan.expired_batches)}"
           if plan.expired_batches else ""))
    return _finish(result)


def _apply(purpose: str | None, batch_id: str | None = None) -> outbox.ApplyReport:
    writes = SourceWrites()
    with warehouse_connection(autocommit=True) as conn:
        report = outbox.apply_outbox(conn, writes, purpose=purpose, batch_id=batch_id)
    log.info("API requests: %s", writes.metrics())
    return report


def setup_task() -> dict:
    report = _apply("deal_setup")
    result = report.as_dict()
    projects = [c for c in report.confirmed if c["kind"] == "psa_project"]
    result["summary"] = (
        f"deal-to-project set-up: {len(projects)} PSA projects "
        f"({', '.join(p['project_code'] + ' = ' + str(p['remote_id']) for p in projects) or 'none'}), "
        f"{_count(report.confirmed, 'erp_job')} ERP jobs, "
        f"{_count(report.confirmed, 'crm_deal_link')} CRM deals linked; "
        f"{sum(1 for c in report.confirmed if c['note'] == 'adopted')} adopted after a lost answer; "
        f"{len(report.failed)} failed (retried next run), {len(report.waiting)} waiting on an earlier step")
    return _finish(result)


def corrections_task() -> dict:
    report = _apply("correction")
    result = report.as_dict()
    worth = sum(c["worth"] for c in report.confirmed)
    result["summary"] = (
        f"corrections applied: {len(report.confirmed)} worth {worth:,.2f} "
        f"({_count(report.confirmed, 'erp_job')} ERP jobs, "
        f"{_count(report.confirmed, 'erp_billing_line')} billing lines, "
        f"{_count(report.confirmed, 'psa_time_entry_rate')} rate fixes); "
        f"{len(report.failed)} failed (retried next run), {len(report.waiting)} waiting")
    return _finish(result)


def alert_task(context, setup: dict, corrections: dict) -> dict:
    as_of = as_of_date(context)
    confirmed = (setup.get("confirmed") or []) + (corrections.get("confirmed") or [])
    with warehouse_connection(autocommit=True) as conn:
        digest = alerts.send_digest(conn, as_of, {"confirmed": confirmed}, context["run_id"])
    digest["summary"] = (
        f"alert digest {digest['status']}: {digest['items']} new items to {digest['destination']}"
        + (f" ({digest['text']})" if digest.get("text") else "")
        + (f"; error: {digest['error']}" if digest.get("error") else ""))
    return _finish(digest)


def run_summary(plan: dict, setup: dict, corrections: dict, digest: dict) -> str:
    line = (
        f"psops_writeback {plan['as_of']}: created "
        f"{_count(setup['confirmed'], 'psa_project')} projects, "
        f"{_count(setup['confirmed'], 'erp_job') + _count(corrections['confirmed'], 'erp_job')} ERP jobs, "
        f"{_count(corrections['confirmed'], 'erp_billing_line')} billing lines; "
        f"{_count(corrections['confirmed'], 'psa_time_entry_rate')} rates corrected; "
        f"{len(plan['held_corrections'])} corrections awaiting finance"
        + (f" (batch {plan['batch_id']})" if plan.get("batch_id") else "")
        + f"; {len(setup['failed']) + len(corrections['failed'])} writes failed; "
        f"alert {digest['status']} to {digest['destination']}")
    log.info("%s", line)
    return line


# -- psops_approve_corrections ------------------------------------------------------

def describe_task(context) -> dict:
    batch_id = (context.get("params") or {}).get("batch_id") or \
        (context["dag_run"].conf or {}).get("batch_id")
    with warehouse_connection(autocommit=True) as conn:
        described = approval.describe_batch(conn, batch_id)
    log.info("%s", described["summary"])
    return described


def decision_task(context, described: dict) -> str:
    with warehouse_connection(autocommit=True) as conn:
        outcome = approval.record_decision(conn, described, context)
    if outcome["apply"]:
        report = _apply("correction", outcome["batch_id"])
        worth = sum(c["worth"] for c in report.confirmed)
        line = (f"batch {outcome['batch_id']} {outcome['decision']} by {outcome['decided_by']}: "
                f"{len(report.confirmed)} corrections applied worth {worth:,.2f}, "
                f"{len(report.failed)} failed (retried by the next psops_writeback), "
                f"{len(report.waiting)} waiting")
    else:
        line = (f"batch {outcome['batch_id'] or '-'} {outcome['decision']} by "
                f"{outcome['decided_by']}: {outcome['rows']} corrections not applied")
    log.info("%s", line)
    return line

