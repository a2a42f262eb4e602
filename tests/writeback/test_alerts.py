"""The alert digest: content in the chat-webhook format, de-duplication within 24
hours of wall-clock time, throttling respected."""

from __future__ import annotations

import psycopg
import pytest

from psops.writeback import alerts
from tests.writeback.helpers import AS_OF, run_writeback

pytestmark = pytest.mark.db


def _webhook_posts(sandbox) -> list[dict]:
    return [w for w in sandbox.writes("webhook") if w["method"] == "POST"]


def _digest(target, run_id="digest"):
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        return alerts.send_digest(conn, AS_OF, {}, run_id)


def test_digest_content_and_no_repeat_within_24_hours(wb_env):
    target, sandbox = wb_env["target"], wb_env["sandbox"]
    sandbox.set_faults(error_rate=1.0, systems=["crm"])  # CRM deal links will fail
    from psops.writeback import outbox, planner
    from psops.writeback.source_writes import SourceWrites

    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        planner.plan_writes(conn, SourceWrites(), AS_OF, "run-1")
        setup = outbox.apply_outbox(conn, SourceWrites(max_attempts=1), purpose="deal_setup")
        first = alerts.send_digest(conn, AS_OF, {"confirmed": setup.confirmed}, "run-1")
    sandbox.set_faults(reset=True)
    assert first["status"] == "sent"
    assert first["destination"].startswith("alerts_webhook (http://127.0.0.1:")
    assert "sandboxwebhooksecret" not in first["destination"]
    posts = _webhook_posts(sandbox)
    assert len(posts) == 1 and posts[0]["status"] == 200
    message = posts[0]["body"]
    assert message["text"].startswith(f"psops digest for {AS_OF}")
    text = "\n".join(b["text"]["text"] for b in message["blocks"] if b["type"] == "section")
    assert "*Ready to bill* - total" in text and " USD over 19 items" in text
    assert "*Blocked from billing*" in text
    for reason in ("RATE_MISMATCH 225,145.51 USD", "NO_BILLING_SCHEDULE", "UNAPPROVED_PURCHASE_ORDER"):
        assert reason in text
    assert "PRJ-00017 period 2026-02" in text
    assert "*New error exceptions" in text and "time_entry.hours_range" in text
    assert "*Missing and late timesheets*" in text and "missing" in text
    assert "deal 9054" in text and "BILLING_TYPE_MISSING" in text
    assert "*Corrections awaiting finance approval*" in text
    assert "*Writes that failed*" in text and "set psa_project_id on CRM deal 9052" in text
    assert "*Written to the source systems this run*" in text and "PSA project PRJ-00052" in text

    # Same items again: nothing new, nothing posted.
    again = _digest(target)
    assert again["status"] == "nothing_new" and again["items"] == 0
    assert len(_webhook_posts(sandbox)) == 1

    # One item changes: only it is alerted.
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        conn.execute("UPDATE marts.billing_readiness SET amount = amount + 1 "
                     "WHERE as_of = %s AND project_code = 'PRJ-00003' AND status = 'blocked'",
                     (AS_OF,))
    changed = _digest(target)
    assert changed["status"] == "sent" and changed["items"] == 1
    assert "PRJ-00003" in _webhook_posts(sandbox)[-1]["body"]["blocks"][1]["text"]["text"]

    # 24 hours later the unchanged items are alerted again.
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        conn.execute("UPDATE ops.alert_log SET last_alerted_at = last_alerted_at - interval '24 hours 1 minute'")
    later = _digest(target)
    assert later["status"] == "sent" and later["items"] >= first["items"] - 10


def test_throttled_webhook_waits_and_delivers(wb_env):
    target, sandbox = wb_env["target"], wb_env["sandbox"]
    sandbox.set_faults(script={"webhook": [429, 429]}, retry_after=1)
    result = run_writeback(target, digest=True)
    assert result["digest"]["status"] == "sent"
    posts = _webhook_posts(sandbox)
    assert [p["status"] for p in posts][-1] == 200
    assert sandbox.stats()["webhook"]["responses"].get("429") == 2


def test_lost_digest_answer_is_not_reposted_and_alerted_next_run(wb_env):
    target, sandbox = wb_env["target"], wb_env["sandbox"]
    sandbox.set_faults(lost_response_rate=1.0, systems=["webhook"])
    first = _digest(target)
    assert first["status"] == "failed"
    assert len(_webhook_posts(sandbox)) == 1
    sandbox.set_faults(reset=True)
    second = _digest(target)
    assert second["status"] == "sent" and second["items"] == first["items"]


class _RecordingTI:
    def __init__(self):
        self.pushed: dict = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def _alert_log_count(target) -> int:
    with psycopg.connect(target.conninfo()) as conn:
        return conn.execute("SELECT count(*) FROM ops.alert_log").fetchone()[0]


def _alert_task(run_id: str, ti: _RecordingTI) -> dict:
    """What psops_writeback's send_alert_digest task does with no writes of its run."""
    from psops.writeback import steps, tasks

    return tasks.fail_if_digest_failed(steps.send_digest(AS_OF, run_id, {"confirmed": []}, None),
                                       ti)


def test_undelivered_digest_fails_the_task_and_nothing_is_marked_sent(wb_env):
    """The webhook answers 500: send_alert_digest records the failed digest, marks no item
    as alerted, then fails (Airflow retries it); the retry delivers, and a further try
    sends nothing again."""
    from psops.writeback import tasks

    target, sandbox = wb_env["target"], wb_env["sandbox"]
    sandbox.set_faults(script={"webhook": [500]})
    ti = _RecordingTI()
    with pytest.raises(tasks.DigestNotDelivered) as failed:
        _alert_task("digest-500", ti)
    message = str(failed.value)
    assert message.startswith("alert digest (")
    assert " items) not delivered to alerts_webhook (http://127.0.0.1:" in message
    assert "500" in message and "sandboxwebhooksecret" not in message
    assert [p["status"] for p in _webhook_posts(sandbox)] == [500]
    assert _alert_log_count(target) == 0
    with psycopg.connect(target.conninfo()) as conn:
        status, items, error = conn.execute(
            "SELECT status, items, error FROM ops.alert_digests WHERE dag_run_id = 'digest-500'"
        ).fetchone()
    assert status == "failed" and items > 0 and "500" in error
    assert ti.pushed["return_value"]["status"] == "failed"

    retry = _alert_task("digest-500", _RecordingTI())
    assert retry["status"] == "sent" and retry["items"] == items
    assert _alert_log_count(target) > 0
    again = _alert_task("digest-500", _RecordingTI())
    assert again["status"] == "nothing_new"
    assert [p["status"] for p in _webhook_posts(sandbox)] == [500, 200]


def test_source_names_cannot_ping_the_channel_or_forge_links():
    """A deal named `<!channel>` is shown as text, never a mention (Slack mrkdwn)."""
    from datetime import date

    from psops.writeback.alerts import Item, Section, render

    section = Section("deals", "Closed-won deals that cannot be set up", items=[
        Item("deal_invalid:1", "f", "deal 1 (<!channel> & <http://x|click>): REGION_UNKNOWN")],
        context="R&D <team>")
    body = render([section], date(2026, 3, 31))["blocks"][1]["text"]["text"]
    assert "<!channel>" not in body and "<http" not in body
    assert "&lt;!channel&gt; &amp; &lt;http://x|click&gt;" in body
    assert "R&amp;D &lt;team&gt;" in body
    assert body.startswith("*Closed-won deals that cannot be set up*")  # our own markup stays


def test_source_text_cannot_break_the_approval_table():
    from psops.formatting import markdown_cell

    assert markdown_cell("fee | 1,000 | forged\nrow <b>") == \
        "fee \\| 1,000 \\| forged row &lt;b&gt;"
    assert markdown_cell("a\\|b") == "a\\\\\\|b"
