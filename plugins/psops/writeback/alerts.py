"""The run's alert digest to `alerts_webhook` (chat incoming webhook: `text` + blocks).

Sections: ready to bill (total + top items), blocked amount by reason (with the
items), new `error` exceptions, missing and late timesheets, deals that cannot be
set up, corrections awaiting approval, writes that failed, writes given up (`dead`:
no longer retried, a person must act), and what this run wrote.
The totals are the warehouse's (marts.billing_totals, marts.billing_blocked_by_reason).
An item (ready row, blocked row, exception, timesheet week, failed write, ...) is
listed only when it is new or changed: the same unchanged item (same key, same
fingerprint) is not alerted again within 24 hours of wall-clock time
(`ops.alert_log`). When nothing is new the digest is not sent at all.
Throttling (429 + Retry-After) is waited out by the hook; an error or a lost answer
is not re-posted by the hook: the digest is recorded `failed`, its items stay
un-logged, and the task fails, so Airflow's retry (or the next run) alerts them again.
`post_message` is the one way psops posts to the webhook (also psops.oncall).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import date, timedelta

from airflow.sdk.exceptions import AirflowFailException
from psycopg.rows import namedtuple_row

from psops.connectors.source_api_hook import SourceApiError, SourceApiHook
from psops.formatting import chat_text, money
from psops.settings import ALERTS_WEBHOOK_CONN_ID
from psops.writeback import approval
from psops.writeback.planner import DEAL_RULE

log = logging.getLogger(__name__)

REALERT_AFTER = timedelta(hours=24)
TOP_READY = 5
ITEMS_PER_SECTION = 10
TIMESHEET_WEEKS = 4


@dataclass
class Item:
    key: str
    fingerprint: str
    line: str


@dataclass
class Section:
    name: str
    title: str
    items: list[Item] = field(default_factory=list)
    context: str = ""  # totals shown whenever the section has something new


def fingerprint(*parts) -> str:
    """What an item looked like when alerted: a changed item is alerted again."""
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _rows(conn, query: str, params: dict | None = None) -> list:
    """The rows of `query` as named tuples, whatever the connection's row factory."""
    with conn.cursor(row_factory=namedtuple_row) as cur:
        return cur.execute(query, params or {}).fetchall()


def build_sections(conn, as_of: date, run_report: dict | None = None) -> list[Section]:
    """Every candidate item of every section (new or not)."""
    written = (run_report or {}).get("confirmed") or []
    return [_ready(conn, as_of), _blocked(conn, as_of), _error_exceptions(conn),
            _timesheets(conn, as_of), _invalid_deals(conn), _awaiting_approval(conn),
            _failed_writes(conn), _dead_writes(conn), _written(written)]


def _ready(conn, as_of: date) -> Section:
    """Ready to bill: total per currency (marts.billing_totals), the top items by amount."""
    totals = sorted(_rows(conn, """SELECT currency, items, amount FROM marts.billing_totals
                                   WHERE as_of = %(as_of)s AND status = 'ready'""",
                          {"as_of": as_of}), key=lambda total: total.currency)
    items = sum(total.items for total in totals)
    top = _rows(conn, """SELECT project_id, project_code, item_type, item_id, amount, currency
                         FROM marts.billing_readiness WHERE as_of = %(as_of)s AND status = 'ready'
                         ORDER BY amount DESC, project_code, item_id LIMIT %(top)s""",
                {"as_of": as_of, "top": TOP_READY})
    context = ("total " + ", ".join(f"{money(t.amount)} {t.currency}" for t in totals)
               + f" over {items} items") if items else "nothing ready"
    return Section("ready", "Ready to bill", context=context, items=[
        Item(f"ready:{r.project_id}:{r.item_type}:{r.item_id}", fingerprint(r.amount),
             f"{r.project_code} {r.item_type} {r.item_id}: {money(r.amount)} {r.currency}")
        for r in top])


def _blocked(conn, as_of: date) -> Section:
    """Blocked: amount per reason (marts.billing_blocked_by_reason), then each item."""
    by_reason = sorted(_rows(conn, """SELECT reason, currency, amount
                                      FROM marts.billing_blocked_by_reason
                                      WHERE as_of = %(as_of)s""", {"as_of": as_of}),
                       key=lambda row: (row.reason, row.currency))
    blocked = _rows(conn, """SELECT project_id, project_code, item_type, item_id, amount, currency,
                                    blocking_reasons
                             FROM marts.billing_readiness WHERE as_of = %(as_of)s AND status = 'blocked'
                             ORDER BY amount DESC, project_code, item_id""", {"as_of": as_of})
    return Section("blocked", "Blocked from billing", context="; ".join(
        f"{row.reason} {money(row.amount)} {row.currency}" for row in by_reason), items=[
        Item(f"blocked:{r.project_id}:{r.item_type}:{r.item_id}",
             fingerprint(r.amount, sorted(r.blocking_reasons)),
             f"{r.project_code} {r.item_type} {r.item_id}: {money(r.amount)} {r.currency}"
             f" - {', '.join(r.blocking_reasons)}")
        for r in blocked])


def _error_exceptions(conn) -> Section:
    """New error exceptions (quarantined records)."""
    errors = _rows(conn, """SELECT id, rule_id, source_system, record_key, first_seen_at
                            FROM ops.exceptions WHERE status = 'open' AND severity = 'error'
                            ORDER BY first_seen_at DESC, id""")
    return Section("exceptions", "New error exceptions (records quarantined)", items=[
        Item(f"exception:{r.id}", fingerprint(r.rule_id),
             f"{r.rule_id}: {r.source_system} record {r.record_key}") for r in errors])


def _timesheets(conn, as_of: date) -> Section:
    """Missing and late timesheets over the last complete weeks."""
    sheets = _rows(conn, """SELECT t.employee_id, coalesce(e.display_name, t.employee_id) AS name,
                                   t.week_start, t.status
                            FROM marts.timesheet_compliance t
                            LEFT JOIN curated.employees e ON e.employee_id = t.employee_id
                            WHERE t.as_of = %(as_of)s AND t.status IN ('missing', 'late')
                              AND t.week_start >= %(since)s
                            ORDER BY t.week_start DESC, t.status, t.employee_id""",
                   {"as_of": as_of, "since": as_of - timedelta(weeks=TIMESHEET_WEEKS + 1)})
    missing = sum(1 for r in sheets if r.status == "missing")
    return Section("timesheets", "Missing and late timesheets",
                   context=f"{missing} missing, {len(sheets) - missing} late "
                           f"(last {TIMESHEET_WEEKS} weeks)",
                   items=[Item(f"timesheet:{r.employee_id}:{r.week_start}", fingerprint(r.status),
                               f"{r.name} week of {r.week_start}: {r.status}") for r in sheets])


def _invalid_deals(conn) -> Section:
    """Deals that cannot be set up as projects."""
    deals = _rows(conn, """SELECT record_key, details FROM ops.exceptions
                           WHERE rule_id = %(rule_id)s AND status = 'open'
                           ORDER BY record_key""", {"rule_id": DEAL_RULE.rule_id})
    return Section("deals", "Closed-won deals that cannot be set up", items=[
        Item(f"deal_invalid:{r.record_key}", fingerprint(r.details.get("reasons")),
             f"deal {r.record_key} ({r.details.get('deal_name')}): "
             f"{', '.join(r.details.get('reasons') or [])}")
        for r in deals])


def _awaiting_approval(conn) -> Section:
    """Corrections waiting for finance, each batch's worth per currency."""
    return Section("approvals", "Corrections awaiting finance approval", items=[
        Item(f"approval:{r.batch_id}", fingerprint(r.corrections),
             f"batch {r.batch_id}: {r.corrections} corrections worth {r.worth}; "
             f"approve or reject in Airflow (psops_approve_corrections, Required actions) "
             f"before {r.expires_at:%Y-%m-%d %H:%M} UTC")
        for r in approval.waiting_batches(conn)])


def _failed_writes(conn) -> Section:
    failed = _rows(conn, """SELECT idempotency_key, description, response_body, attempts
                            FROM ops.outbox WHERE status = 'failed' ORDER BY updated_at""")
    return Section("failed_writes", "Writes that failed", items=[
        Item(f"write:{r.idempotency_key}", fingerprint(r.response_body),
             f"{r.description} (attempt {r.attempts}): {(r.response_body or '')[:300]}")
        for r in failed])


def _dead_writes(conn) -> Section:
    """Writes given up after PSOPS_OUTBOX_MAX_ATTEMPTS sends (ops.dead_writes)."""
    dead = _rows(conn, """SELECT idempotency_key, description, attempts, reason
                          FROM ops.dead_writes ORDER BY given_up_at, idempotency_key""")
    return Section("dead_writes", "Writes given up after repeated failures (no longer "
                                  "retried)", items=[
        Item(f"dead:{r.idempotency_key}", fingerprint(r.reason),
             f"{r.description}: given up after {r.attempts} attempts: {r.reason[:300]}")
        for r in dead])


def _written(written: list[dict]) -> Section:
    """What this run wrote (events of this run: always new)."""
    return Section("written", "Written to the source systems this run", items=[
        Item(f"written:{w['key']}:{w.get('remote_id')}", fingerprint(w.get("remote_id")),
             f"{w['description']} -> {w['system'].upper()} {w.get('remote_id')}"
             + (" (adopted after a lost answer)" if w.get("note") == "adopted" else ""))
        for w in written])


def new_items(conn, sections: list[Section]) -> list[Section]:
    """Each section with only the items not alerted unchanged within 24 hours."""
    recent = {row.item_key: row.fingerprint for row in _rows(
        conn, "SELECT item_key, fingerprint FROM ops.alert_log "
              "WHERE last_alerted_at > now() - %(realert_after)s",
        {"realert_after": REALERT_AFTER})}
    return [Section(s.name, s.title, [i for i in s.items if recent.get(i.key) != i.fingerprint],
                    s.context) for s in sections]


def render(sections: list[Section], as_of: date) -> dict:
    """The chat-webhook message: `text` (fallback / notification) plus blocks."""
    shown = [s for s in sections if s.items]
    counts = ", ".join(f"{len(s.items)} {s.name.replace('_', ' ')}" for s in shown)
    text = f"psops digest for {as_of}: {counts}" if shown else f"psops digest for {as_of}"
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text",
                                                      "text": f"psops digest {as_of}"}}]
    for s in shown:
        lines = [f"*{s.title}*" + (f" - {chat_text(s.context)}" if s.context else "")]
        lines += [f"• {chat_text(i.line)}" for i in s.items[:ITEMS_PER_SECTION]]
        if len(s.items) > ITEMS_PER_SECTION:
            lines.append(f"… and {len(s.items) - ITEMS_PER_SECTION} more")
        body = "\n".join(lines)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body[:2900]}})
    return {"text": text, "blocks": blocks}


def webhook_hook(**kwargs) -> SourceApiHook:
    """The hook of `alerts_webhook` (no auth: the secret is the path in `extra.path`)."""
    return SourceApiHook(ALERTS_WEBHOOK_CONN_ID, "none", "webhook", **kwargs)


def destination(hook: SourceApiHook) -> str:
    """Where messages go, without the webhook's secret (the path's last part)."""
    path = str(hook.extra("path"))
    head, _, _secret = path.rpartition("/")
    return f"{ALERTS_WEBHOOK_CONN_ID} ({hook.url(head or '/')}/…)"


def post_message(message: dict, hook: SourceApiHook | None = None) -> str:
    """POST one chat message (`text` + blocks) to `alerts_webhook`; returns where it went
    (redacted). Throttling is waited out; a 5xx or a lost answer is not re-posted.
    Raises SourceApiError / AirflowFailException when not delivered; their messages
    never contain the secret path (the hook redacts it)."""
    hook = hook or webhook_hook()
    hook.request("POST", str(hook.extra("path")), json=message, safe_to_retry=False)
    return destination(hook)


def send_digest(conn, as_of: date, run_report: dict | None = None,
                dag_run_id: str | None = None, hook: SourceApiHook | None = None) -> dict:
    sections = new_items(conn, build_sections(conn, as_of, run_report))
    count = sum(len(s.items) for s in sections)
    hook = hook or webhook_hook()
    where = destination(hook)
    if count == 0:
        conn.execute("""INSERT INTO ops.alert_digests (dag_run_id, as_of, status, destination, items)
                        VALUES (%s, %s, 'nothing_new', %s, 0)""", (dag_run_id, as_of, where))
        return {"status": "nothing_new", "items": 0, "destination": where, "text": None}
    message = render(sections, as_of)
    try:
        post_message(message, hook)
    except (SourceApiError, AirflowFailException) as err:
        conn.execute("""INSERT INTO ops.alert_digests (dag_run_id, as_of, status, destination, items,
                               text, payload, error)
                        VALUES (%s, %s, 'failed', %s, %s, %s, %s, %s)""",
                     (dag_run_id, as_of, where, count, message["text"], json.dumps(message),
                      str(err)[:2000]))
        log.warning("alert digest not delivered to %s: %s", where, err)
        return {"status": "failed", "items": count, "destination": where,
                "text": message["text"], "error": str(err)[:500]}
    with conn.transaction():
        for s in sections:
            for i in s.items:
                conn.execute(
                    """INSERT INTO ops.alert_log (item_key, fingerprint, section, last_alerted_at)
                       VALUES (%s, %s, %s, now())
                       ON CONFLICT (item_key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,
                              section = EXCLUDED.section, last_alerted_at = EXCLUDED.last_alerted_at""",
                    (i.key, i.fingerprint, s.name))
        conn.execute("""INSERT INTO ops.alert_digests (dag_run_id, as_of, status, destination, items,
                               text, payload)
                        VALUES (%s, %s, 'sent', %s, %s, %s, %s)""",
                     (dag_run_id, as_of, where, count, message["text"], json.dumps(message)))
    return {"status": "sent", "items": count, "destination": where, "text": message["text"]}
