"""Approval decisions in-process: expiry (without a scheduler, and an unanswered or
timed-out human-in-the-loop task), partial approval, and what finance is shown; who may
answer (PSOPS_FINANCE_USERS), through a real api-server."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter

import psycopg
import pytest

from psops.writeback import steps
from tests.conftest import BIN_AIRFLOW, REPO_ROOT
from tests.writeback.helpers import AS_OF, outbox_rows, parked_approvals, warehouse
from tests.writeback.helpers import plan_writes as _plan

pytestmark = pytest.mark.db


def _decide(target, batch_id, answer):
    """psops_approve_corrections' steps: describe the batch, then decide (and apply)."""
    with warehouse(target):
        described = steps.describe_batch(batch_id)
        return described, steps.decide_batch(described, answer, "approve__test")


def test_unanswered_batch_expires_on_the_next_writeback_run(wb_env, monkeypatch):
    target = wb_env["target"]
    monkeypatch.setenv("PSOPS_APPROVAL_TIMEOUT_MINUTES", "0")
    batch_id = _plan(target, "run-1")["batch_id"]
    assert batch_id
    second = _plan(target, "run-2")
    assert second["expired_batches"] == [batch_id]
    rows = [r for r in outbox_rows(target).values() if r["batch_id"] == batch_id]
    assert rows and {r["status"] for r in rows} == {"expired"}
    assert all(r["decided_by"] == "expired: no answer in time" for r in rows)
    with psycopg.connect(target.conninfo()) as conn:
        decisions = Counter(decision for (decision,) in conn.execute(
            "SELECT decision FROM ops.correction_log WHERE batch_id = %s", (batch_id,)))
    assert decisions == {"held_for_approval": len(rows), "expired": len(rows)}
    assert _batch_status(target, batch_id) == "expired"
    # The approval run that comes late has nothing left to ask.
    described, outcome = _decide(target, batch_id, None)
    assert not described["pending"] and not outcome["apply"]
    # Expired corrections are not proposed again.
    assert not _plan(target, "run-3")["held_corrections"]


@pytest.mark.parametrize("answer", [
    None,  # the approval task failed on its timeout: no answer at all
    {"chosen_options": ["Reject"], "params_input": {}, "responded_by_user": None},  # defaults
])
def test_approval_task_without_a_human_answer_counts_as_expired(wb_env, answer):
    target = wb_env["target"]
    batch_id = _plan(target)["batch_id"]
    described, outcome = _decide(target, batch_id, answer)
    assert described["pending"]
    assert outcome["decision"] == "expired" and not outcome["apply"]
    rows = [r for r in outbox_rows(target).values() if r["batch_id"] == batch_id]
    assert {r["status"] for r in rows} == {"expired"}


def test_approve_all_but_listed_projects(wb_env):
    """The approved projects' corrections are applied at once, the listed one rejected."""
    target = wb_env["target"]
    batch_id = _plan(target)["batch_id"]
    described, outcome = _decide(target, batch_id, {
        "chosen_options": ["Approve"], "params_input": {"reject_projects": "PRJ-00017"},
        "responded_by_user": {"id": "finance.lead", "name": "finance.lead"}})
    assert outcome["decision"] == "approved" and outcome["apply"]
    assert len(outcome["confirmed"]) == 3 and not outcome["failed"]
    rows = [r for r in outbox_rows(target).values() if r["batch_id"] == batch_id]
    by_project = {(r["project_code"], r["status"]) for r in rows}
    assert by_project == {("PRJ-00006", "confirmed"), ("PRJ-00012", "confirmed"),
                          ("PRJ-00017", "rejected")}
    assert all(r["decided_by"].startswith("finance: finance.lead") for r in rows)


def test_what_finance_sees(wb_env):
    target = wb_env["target"]
    batch_id = _plan(target)["batch_id"]
    with warehouse(target):
        described = steps.describe_batch(None)  # the oldest waiting batch
    assert described["batch_id"] == batch_id
    # The batch holds EUR and USD projects: a total per currency, never one sum of both.
    assert described["subject"] == ("Approve 100 billing corrections worth 8,000.00 EUR, "
                                    "17,313.38 USD (PRJ-00006, PRJ-00012, PRJ-00017)?")
    body = described["body"]
    assert "**100 corrections worth 8,000.00 EUR, 17,313.38 USD in total**" in body
    assert "| **PRJ-00017** | **97 changes** | **7,313.38 USD** |" in body
    assert "| PRJ-00012 | new ERP job: create ERP job PRJ-00012" in body
    assert "expires as rejected" in body and "… and 40 more" in body


def test_amounts_in_different_currencies_are_never_added_up():
    from psops.formatting import worth_text

    usd = [{"worth": 7000, "currency": "USD"}, {"worth": 313.38, "currency": "USD"}]
    assert worth_text(usd) == "7,313.38"
    assert worth_text(usd, currency_codes=True) == "7,313.38 USD"
    assert worth_text([*usd, {"worth": 8000, "currency": "EUR"}]) == "8,000.00 EUR, 7,313.38 USD"
    assert worth_text([]) == "0.00"


def test_demo_summary_lists_created_corrected_and_the_alert(wb_env):
    # bin/psops_demo_summary.py: tests.warehouse_fixtures puts bin/ on sys.path
    from psops_demo_summary import writeback_summary_lines as summary_lines

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


# --------------------------------------------------------------------------
# Only finance answers (PSOPS_FINANCE_USERS)
# --------------------------------------------------------------------------


def _approval_task(monkeypatch, users: str | None):
    from airflow.dag_processing.dagbag import DagBag

    if users is None:
        monkeypatch.delenv("PSOPS_FINANCE_USERS", raising=False)
    else:
        monkeypatch.setenv("PSOPS_FINANCE_USERS", users)
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "psops_approve_corrections.py"))
    dag = bag.dags.get("psops_approve_corrections")
    return (dag.get_task("finance_approval") if dag else None), bag.import_errors


def test_the_approval_task_is_assigned_to_the_configured_finance_users(monkeypatch):
    task, errors = _approval_task(monkeypatch, "alice, bob")
    assert not errors
    assert task.assigned_users == [{"id": "alice", "name": "alice"}, {"id": "bob", "name": "bob"}]
    task, _ = _approval_task(monkeypatch, None)
    assert task.assigned_users == [{"id": "finance", "name": "finance"}]
    # Naming nobody would leave the task open to every user: the DAG does not load.
    task, errors = _approval_task(monkeypatch, " , ")
    assert task is None and "PSOPS_FINANCE_USERS" in "".join(errors.values())


def _batch_status(target, batch_id) -> str:
    with psycopg.connect(target.conninfo()) as conn:
        (status,) = conn.execute("SELECT status FROM ops.approval_batches WHERE batch_id = %s",
                                 (batch_id,)).fetchone()
    return status


def _waiting_request(base: str, headers: dict, batch_id: str, proc) -> dict:
    import requests

    deadline = time.monotonic() + 180
    while True:
        listing = requests.get(f"{base}/api/v2/dags/psops_approve_corrections/dagRuns/~/"
                               "hitlDetails", headers=headers, timeout=10)
        listing.raise_for_status()
        waiting = parked_approvals(listing.json(), batch_id)
        if waiting:
            return waiting[0]
        assert proc.poll() is None, proc.communicate()[0][-5000:]
        assert time.monotonic() < deadline, listing.json()
        time.sleep(1)


@pytest.mark.slow
def test_only_finance_users_can_answer_the_approval(wb_env, approval_airflow):
    """A real `dags test` run waits for the answer; another logged-in user with the same
    Airflow role (`user`) is refused by Airflow (403) and decides nothing, finance's
    answer is taken."""
    import requests

    from tests.ui.conftest import (
        FINANCE_PASSWORD,
        FINANCE_USER,
        OTHER_PASSWORD,
        OTHER_USER,
        login_token,
    )

    target, server = wb_env["target"], approval_airflow["server"]
    batch_id = _plan(target)["batch_id"]
    assert batch_id
    finance = {"Authorization": f"Bearer {login_token(server, FINANCE_USER, FINANCE_PASSWORD)}"}
    other = {"Authorization": f"Bearer {login_token(server, OTHER_USER, OTHER_PASSWORD)}"}
    proc = subprocess.Popen(
        [str(BIN_AIRFLOW), "dags", "test", "psops_approve_corrections", AS_OF.isoformat(),
         "--conf", json.dumps({"batch_id": batch_id})],
        env={**os.environ, "AIRFLOW_HOME": str(approval_airflow["home"]),
             "PSOPS_RETRY_DELAY_SECONDS": "1", **approval_airflow["env"],
             "AIRFLOW_CONN_WAREHOUSE": target.airflow_uri()},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd="/")
    try:
        detail = _waiting_request(server.url, finance, batch_id, proc)
        assert detail["assigned_users"] == [{"id": FINANCE_USER, "name": FINANCE_USER}]
        url = (f"{server.url}/api/v2/dags/psops_approve_corrections/dagRuns/"
               f"{detail['task_instance']['dag_run_id']}/taskInstances/finance_approval/-1/"
               "hitlDetails")
        refused = requests.patch(url, headers=other, timeout=10,
                                 json={"chosen_options": ["Approve"], "params_input": {}})
        assert refused.status_code == 403, refused.text
        assert "not a respondent" in refused.json()["detail"]
        unanswered = requests.get(url, headers=finance, timeout=10).json()
        assert not unanswered["response_received"] and unanswered["responded_by_user"] is None
        assert _batch_status(target, batch_id) == "awaiting_approval"
        accepted = requests.patch(url, headers=finance, timeout=10,
                                  json={"chosen_options": ["Reject"], "params_input": {}})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["responded_by"] == {"id": FINANCE_USER, "name": FINANCE_USER}
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 0, output[-5000:]
    assert f"rejected by finance: {FINANCE_USER}" in output
    assert _batch_status(target, batch_id) == "rejected"
    rows = [r for r in outbox_rows(target).values() if r["batch_id"] == batch_id]
    assert rows and {r["status"] for r in rows} == {"rejected"}
    assert all(r["decided_by"].startswith(f"finance: {FINANCE_USER} ") for r in rows)


# --------------------------------------------------------------------------
# Each transition is one conditional update: a late answer is told, nothing applied
# --------------------------------------------------------------------------


def _approve(user: str = "finance.lead") -> dict:
    return {"chosen_options": ["Approve"], "params_input": {},
            "responded_by_user": {"id": user, "name": user}}


def _decisions_logged(target, batch_id) -> Counter:
    with psycopg.connect(target.conninfo()) as conn:
        return Counter(decision for (decision,) in conn.execute(
            "SELECT decision FROM ops.correction_log WHERE batch_id = %s", (batch_id,)))


def _assert_expired_and_nothing_applied(target, sandbox, batch_id, writes_before):
    assert _batch_status(target, batch_id) == "expired"
    rows = [r for r in outbox_rows(target).values() if r["batch_id"] == batch_id]
    assert rows and {r["status"] for r in rows} == {"expired"}
    assert "approved" not in _decisions_logged(target, batch_id)
    assert len(sandbox.writes()) == writes_before


def test_an_answer_after_the_expiry_is_too_late_and_applies_nothing(wb_env):
    """Finance answers after expires_at, before any psops_writeback run expired the
    batch: the answer is refused, the batch expires, the approver is told."""
    from psops.writeback import tasks

    target, sandbox = wb_env["target"], wb_env["sandbox"]
    batch_id = _plan(target)["batch_id"]
    with warehouse(target):
        described = steps.describe_batch(batch_id)  # shown to finance while still open
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        conn.execute("UPDATE ops.approval_batches SET expires_at = now() - interval '1 minute' "
                     "WHERE batch_id = %s", (batch_id,))
    writes_before = len(sandbox.writes())
    with warehouse(target):
        outcome = steps.decide_batch(described, _approve(), "approve__late")
    assert not outcome["apply"] and not outcome["confirmed"]
    assert outcome["too_late"].startswith(f"Too late: approval batch {batch_id} expired at ")
    assert "Approve by finance.lead" in outcome["too_late"]
    assert "nothing was applied" in outcome["summary"]
    _assert_expired_and_nothing_applied(target, sandbox, batch_id, writes_before)
    with pytest.raises(tasks.AnswerTooLate, match=f"^Too late: approval batch {batch_id} "):
        tasks.fail_if_too_late(outcome)
    # A batch already past its expiry is not shown to finance again.
    with warehouse(target):
        assert not steps.describe_batch(batch_id)["pending"]


def test_an_answer_given_in_time_counts_when_its_task_runs_after_the_expiry(wb_env):
    """Finance answered before expires_at; the task that records it ran only after (a
    retry after an outage): the answer's own time decides, the batch is approved."""
    target = wb_env["target"]
    batch_id = _plan(target)["batch_id"]
    with warehouse(target):
        described = steps.describe_batch(batch_id)
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        (answered,) = conn.execute("SELECT now() - interval '2 minutes'").fetchone()
        conn.execute("UPDATE ops.approval_batches SET expires_at = now() - interval '1 minute' "
                     "WHERE batch_id = %s", (batch_id,))
    answer = {**_approve(), "responded_at": answered.isoformat()}
    with warehouse(target):
        outcome = steps.decide_batch(described, answer, "approve__in_time")
    assert outcome["apply"] and not outcome["too_late"]
    assert _batch_status(target, batch_id) == "approved"


def _wait_until_blocked_on_a_lock(target, thread) -> None:
    """Until a session of the test database waits for a row lock (the approver)."""
    deadline = time.monotonic() + 120
    with psycopg.connect(target.conninfo(), autocommit=True) as watcher:
        while True:
            (waiting,) = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'").fetchone()
            if waiting:
                return
            assert thread.is_alive(), "the approval did not wait for the expiry's lock"
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_an_approval_racing_an_expiry_is_too_late(wb_env):
    """Two real sessions: psops_writeback expires the batch in an open transaction while
    finance's approval arrives; the approval waits for it and finds the batch expired:
    never `approved by` on expired rows, nothing applied."""
    import threading

    from psops.writeback import approval

    target, sandbox = wb_env["target"], wb_env["sandbox"]
    batch_id = _plan(target)["batch_id"]
    outcome: dict = {}
    with warehouse(target):
        described = steps.describe_batch(batch_id)
        writes_before = len(sandbox.writes())
        approver = threading.Thread(target=lambda: outcome.update(
            steps.decide_batch(described, _approve(), "approve__race")))
        with psycopg.connect(target.conninfo()) as expirer:  # one transaction until the end
            expirer.execute("UPDATE ops.approval_batches SET expires_at = now() "
                            "WHERE batch_id = %s", (batch_id,))
            assert approval.expire_stale(expirer, "writeback-run") == [batch_id]
            approver.start()
            _wait_until_blocked_on_a_lock(target, approver)
        approver.join(timeout=120)
    assert not approver.is_alive()
    assert outcome["too_late"] and not outcome["apply"]
    _assert_expired_and_nothing_applied(target, sandbox, batch_id, writes_before)
    with psycopg.connect(target.conninfo()) as conn:
        (decided_by,) = conn.execute("SELECT decided_by FROM ops.approval_batches "
                                     "WHERE batch_id = %s", (batch_id,)).fetchone()
    assert decided_by.startswith("expired: no answer before ")


def test_no_answer_after_the_batch_expired_is_not_an_error(wb_env):
    """The approval task timed out after psops_writeback had expired the batch: nobody
    answered, so nobody is told anything; the expiry stands."""
    from psops.writeback import approval, tasks

    target = wb_env["target"]
    batch_id = _plan(target)["batch_id"]
    with warehouse(target):
        described = steps.describe_batch(batch_id)
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        conn.execute("UPDATE ops.approval_batches SET expires_at = now() WHERE batch_id = %s",
                     (batch_id,))
        assert approval.expire_stale(conn, "writeback-run") == [batch_id]
    with warehouse(target):
        outcome = steps.decide_batch(described, None, "approve__timed_out")
    assert outcome["decision"] == "expired" and not outcome["too_late"] and not outcome["apply"]
    assert tasks.fail_if_too_late(outcome) is outcome
    assert _batch_status(target, batch_id) == "expired"


def test_a_second_answer_to_a_decided_batch_is_too_late(wb_env):
    target, sandbox = wb_env["target"], wb_env["sandbox"]
    batch_id = _plan(target)["batch_id"]
    with warehouse(target):
        described = steps.describe_batch(batch_id)
        first = steps.decide_batch(described, {
            "chosen_options": ["Reject"], "params_input": {},
            "responded_by_user": {"id": "finance.lead", "name": "finance.lead"}}, "approve__1")
        writes_before = len(sandbox.writes())
        second = steps.decide_batch(described, _approve("finance.other"), "approve__2")
    assert first["decision"] == "rejected" and not first["too_late"]
    assert second["too_late"].startswith(f"Too late: approval batch {batch_id} was already "
                                         "rejected by finance: finance.lead")
    assert not second["apply"] and len(sandbox.writes()) == writes_before
    assert _batch_status(target, batch_id) == "rejected"
    rows = [r for r in outbox_rows(target).values() if r["batch_id"] == batch_id]
    assert {r["status"] for r in rows} == {"rejected"}


# --------------------------------------------------------------------------
# The threshold counts a project's corrections over a rolling window
# --------------------------------------------------------------------------


def _rate_fix(day: int, worth: str):
    from decimal import Decimal

    from psops.writeback.outbox import PlannedWrite

    return PlannedWrite(
        f"psa.time_entry_rate:trickle-{day}:150", "psa_time_entry_rate", purpose="correction",
        system="psa", description=f"rate fix of day {day}", payload={"billable_rate": 150},
        project_code="PRJ-00017", record_key=f"trickle-{day}", worth=Decimal(worth),
        currency="USD")


def test_a_daily_trickle_below_the_threshold_is_held_once_the_window_crosses_it(
        wb_env, monkeypatch):
    """400 a day for one project, threshold 1,000, window 7 days: days 1 and 2 (400,
    800 within the window) are approved automatically, day 3 (1,200) is held; what was
    approved more than 7 days ago no longer counts."""
    from psops.writeback import approval

    monkeypatch.setenv("PSOPS_APPROVAL_THRESHOLD", "1000")
    monkeypatch.delenv("PSOPS_APPROVAL_WINDOW_DAYS", raising=False)
    target = wb_env["target"]
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        def a_day_passes():
            conn.execute("UPDATE ops.outbox SET decided_at = decided_at - interval '1 day' "
                         "WHERE decided_at IS NOT NULL")

        day1 = approval.submit(conn, [_rate_fix(1, "400")], "as-of-2026-03-29")
        assert len(day1.approved) == 1 and not day1.held
        conn.execute("UPDATE ops.outbox SET status = 'confirmed'")  # applied
        a_day_passes()
        day2 = approval.submit(conn, [_rate_fix(2, "400")], "as-of-2026-03-30")
        assert len(day2.approved) == 1 and not day2.held
        a_day_passes()
        day3 = approval.submit(conn, [_rate_fix(3, "400")], "as-of-2026-03-31")
        assert len(day3.held) == 1 and not day3.approved and day3.batch_id
        (reason,) = conn.execute(
            "SELECT decided_by FROM ops.correction_log WHERE decision = 'held_for_approval'"
        ).fetchone()
        assert reason == ("threshold: project worth 1,200.00 within 7 days "
                          "(400.00 new) > 1,000.00")
        # Day 1 leaves the window: 400 (day 2) + 400 new again stays below.
        conn.execute("UPDATE ops.outbox SET decided_at = now() - interval '8 days' "
                     "WHERE idempotency_key = %s", (_rate_fix(1, "0").idempotency_key,))
        day4 = approval.submit(conn, [_rate_fix(4, "400")], "as-of-2026-04-01")
        assert len(day4.approved) == 1 and not day4.held
        # What finance reviewed (day 3's batch, approved) does not count again.
        conn.execute("UPDATE ops.outbox SET status = 'pending', decided_by = 'finance: x' "
                     "WHERE batch_id = %s", (day3.batch_id,))
        day5 = approval.submit(conn, [_rate_fix(5, "150")], "as-of-2026-04-02")
        assert len(day5.approved) == 1 and not day5.held
