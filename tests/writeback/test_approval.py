"""Approval decisions in-process: expiry (without a scheduler, and an unanswered or
timed-out human-in-the-loop task), partial approval, and what finance is shown."""

from __future__ import annotations

from collections import Counter

import psycopg
import pytest

from psops.writeback import approval, planner
from psops.writeback.source_writes import SourceWrites
from tests.writeback.helpers import AS_OF, outbox_rows

pytestmark = pytest.mark.db


class _TI:
    def __init__(self, answer):
        self.answer = answer

    def xcom_pull(self, task_ids):
        assert task_ids == "finance_approval"
        return self.answer


def _plan(target, run_id="plan"):
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        return planner.plan_writes(conn, SourceWrites(), AS_OF, run_id)


def _decide(target, batch_id, answer):
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        described = approval.describe_batch(conn, batch_id)
        return described, approval.record_decision(
            conn, described, {"run_id": "approve__test", "ti": _TI(answer)})


def test_unanswered_batch_expires_on_the_next_writeback_run(wb_env, monkeypatch):
    target = wb_env["target"]
    monkeypatch.setenv("PSOPS_APPROVAL_TIMEOUT_MINUTES", "0")
    batch_id = _plan(target, "run-1").batch_id
    assert batch_id
    second = _plan(target, "run-2")
    assert second.expired_batches == [batch_id]
    rows = [r for r in outbox_rows(target).values() if r["batch_id"] == batch_id]
    assert rows and {r["status"] for r in rows} == {"expired"}
    assert all(r["decided_by"] == "expired: no answer in time" for r in rows)
    with psycopg.connect(target.conninfo()) as conn:
        decisions = Counter(r[0] for r in conn.execute(
            "SELECT decision FROM ops.correction_log WHERE batch_id = %s", (batch_id,)))
        status = conn.execute("SELECT status FROM ops.approval_batches WHERE batch_id = %s",
                              (batch_id,)).fetchone()[0]
    assert decisions == {"held_for_approval": len(rows), "expired": len(rows)}
    assert status == "expired"
    # The approval run that comes late has nothing left to ask.
    described, outcome = _decide(target, batch_id, None)
    assert not described["pending"] and not outcome["apply"]
    # Expired corrections are not proposed again.
    assert not _plan(target, "run-3").held_corrections


@pytest.mark.parametrize("answer", [
    None,  # the approval task failed on its timeout: no answer at all
    {"chosen_options": ["Reject"], "params_input": {}, "responded_by_user": None},  # defaults
])
def test_approval_task_without_a_human_answer_counts_as_expired(wb_env, answer):
    target = wb_env["target"]
    batch_id = _plan(target).batch_id
    described, outcome = _decide(target, batch_id, answer)
    assert described["pending"]
    assert outcome["decision"] == "expired" and not outcome["apply"]
    rows = [r for r in outbox_rows(target).values() if r["batch_id"] == batch_id]
    assert {r["status"] for r in rows} == {"expired"}


def test_approve_all_but_listed_projects(wb_env):
    target = wb_env["target"]
    batch_id = _plan(target).batch_id
    described, outcome = _decide(target, batch_id, {
        "chosen_options": ["Approve"], "params_input": {"reject_projects": "PRJ-00017"},
        "responded_by_user": {"id": "finance.lead", "name": "finance.lead"}})
    assert outcome["decision"] == "approved" and outcome["apply"]
    rows = [r for r in outbox_rows(target).values() if r["batch_id"] == batch_id]
    by_project = {(r["project_code"], r["status"]) for r in rows}
    assert by_project == {("PRJ-00006", "pending"), ("PRJ-00012", "pending"),
                          ("PRJ-00017", "rejected")}
    assert all(r["decided_by"].startswith("finance: finance.lead") for r in rows)


def test_what_finance_sees(wb_env):
    target = wb_env["target"]
    batch_id = _plan(target).batch_id
    with psycopg.connect(target.conninfo()) as conn:
        described = approval.describe_batch(conn, None)  # the oldest waiting batch
    assert described["batch_id"] == batch_id
    assert described["subject"] == ("Approve 100 billing corrections worth 25,313.38 "
                                    "(PRJ-00006, PRJ-00012, PRJ-00017)?")
    body = described["body"]
    assert "| **PRJ-00017** | **97 changes** | **7,313.38 USD** |" in body
    assert "| PRJ-00012 | new ERP job: create ERP job PRJ-00012" in body
    assert "expires as rejected" in body and "… and 40 more" in body


def test_demo_summary_lists_created_corrected_and_the_alert(wb_env):
    from psops.writeback.demo_summary import summary_lines
    from tests.writeback.helpers import run_writeback

    target = wb_env["target"]
    run_writeback(target, digest=True)
    with psycopg.connect(target.conninfo()) as conn:
        text = "\n".join(summary_lines(conn))
    assert "PSA project         3 (deal_setup): PRJ-00052=" in text
    assert "ERP job             1 (correction): PRJ-00018=" in text
    assert "Awaiting finance: batch corr-" in text
    assert "Deals that cannot be set up (ops.exceptions deal.setup_invalid): 9054, 9055, 9056" in text
    assert "Alert: sent to alerts_webhook (http://127.0.0.1:" in text
