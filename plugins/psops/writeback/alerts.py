"""The run's alert digest to `alerts_webhook` (chat incoming webhook: `text` + blocks).

Sections: ready to bill (total + top items), blocked amount by reason (with the
items), new `error` exceptions, missing and late timesheets, deals that cannot be
set up, corrections awaiting approval, writes that failed, and what this run wrote.
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
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from airflow.sdk.exceptions import AirflowFailException

from psops.connectors.source_api_hook import SourceApiError, SourceApiHook

log = logging.getLogger(__name__)

WEBHOOK_CONN_ID = "alerts_webhook"
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


def _fp(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _m(value) -> str:
    return f"{float(value or 0):,.2f}"


def _rows(conn, sql: str, params=None) -> list[tuple]:
    return conn.execute(sql, params or {}).fetchall()


def build_sections(conn, as_of: date, run_report: dict | None = None) -> list[Section]:
    """Every candidate item of every section (new or not)."""
    run_report = run_report or {}
    sections = []

    # Ready to bill: total per currency, the top items by amount.
    ready = _rows(conn, """SELECT project_id, project_code, item_type, item_id, amount, currency
                           FROM marts.billing_readiness WHERE as_of = %(as_of)s AND status = 'ready'
                           ORDER BY amount DESC, project_code, item_id""", {"as_of": as_of})
    totals: dict[str, float] = defaultdict(float)
    for r in ready:
        totals[r[5] or "?"] += float(r[4])
    s = Section("ready", "Ready to bill",
                context="total " + ", ".join(f"{_m(v)} {c}" for c, v in sorted(totals.items()))
                + f" over {len(ready)} items" if ready else "nothing ready")
    s.items = [Item(f"ready:{r[0]}:{r[2]}:{r[3]}", _fp(r[4]),
                    f"{r[1]} {r[2]} {r[3]}: {_m(r[4])} {r[5]}") for r in ready[:TOP_READY]]
    sections.append(s)

    # Blocked: amount per reason, then each blocked item with its reasons.
    blocked = _rows(conn, """SELECT project_id, project_code, item_type, item_id, amount, currency,
                                    blocking_reasons
                             FROM marts.billing_readiness WHERE as_of = %(as_of)s AND status = 'blocked'
                             ORDER BY amount DESC, project_code, item_id""", {"as_of": as_of})
    by_reason: dict[tuple[str, str], float] = defaultdict(float)
    for r in blocked:
        for reason in r[6]:
            by_reason[(reason, r[5] or "?")] += float(r[4])
    s = Section("blocked", "Blocked from billing",
                context="; ".join(f"{reason} {_m(v)} {cur}"
                                  for (reason, cur), v in sorted(by_reason.items())))
    s.items = [Item(f"blocked:{r[0]}:{r[2]}:{r[3]}", _fp(r[4], sorted(r[6])),
                    f"{r[1]} {r[2]} {r[3]}: {_m(r[4])} {r[5]} - {', '.join(r[6])}")
               for r in blocked]
    sections.append(s)

    # New error exceptions (quarantined records).
    errors = _rows(conn, """SELECT id, rule_id, source_system, record_key, first_seen_at
                            FROM ops.exceptions WHERE status = 'open' AND severity = 'error'
                            ORDER BY first_seen_at DESC, id""")
    sections.append(Section("exceptions", "New error exceptions (records quarantined)", items=[
        Item(f"exception:{r[0]}", _fp(r[1]), f"{r[1]}: {r[2]} record {r[3]}") for r in errors]))

    # Missing and late timesheets over the last complete weeks.
    sheets = _rows(conn, """SELECT t.employee_id, coalesce(e.display_name, t.employee_id), t.week_start,
                                   t.status
                            FROM marts.timesheet_compliance t
                            LEFT JOIN curated.employees e ON e.employee_id = t.employee_id
                            WHERE t.as_of = %(as_of)s AND t.status IN ('missing', 'late')
                              AND t.week_start >= %(since)s
                            ORDER BY t.week_start DESC, t.status, t.employee_id""",
                   {"as_of": as_of, "since": as_of - timedelta(weeks=TIMESHEET_WEEKS + 1)})
    missing = sum(1 for r in sheets if r[3] == "missing")
    sections.append(Section("timesheets", "Missing and late timesheets",
                            context=f"{missing} missing, {len(sheets) - missing} late "
                                    f"(last {TIMESHEET_WEEKS} weeks)",
                            items=[Item(f"timesheet:{r[0]}:{r[2]}", _fp(r[3]),
                                        f"{r[1]} week of {r[2]}: {r[3]}") for r in sheets]))

    # Deals that cannot be set up as projects.
    deals = _rows(conn, """SELECT record_key, details FROM ops.exceptions
                           WHERE rule_id = 'deal.setup_invalid' AND status = 'open'
                           ORDER BY record_key""")
    sections.append(Section("deals", "Closed-won deals that cannot be set up", items=[
        Item(f"deal_invalid:{r[0]}", _fp(r[1].get("reasons")),
             f"deal {r[0]} ({r[1].get('deal_name')}): {', '.join(r[1].get('reasons') or [])}")
        for r in deals]))

    # Corrections waiting for finance.
    batches = _rows(conn, """SELECT batch_id, corrections, total_worth, expires_at
                             FROM ops.approval_batches WHERE status = 'awaiting_approval'
                             ORDER BY created_at""")
    sections.append(Section("approvals", "Corrections awaiting finance approval", items=[
        Item(f"approval:{r[0]}", _fp(r[1]),
             f"batch {r[0]}: {r[1]} corrections worth {_m(r[2])}; approve or reject in Airflow "
             f"(psops_approve_corrections, Required actions) before {r[3]:%Y-%m-%d %H:%M} UTC")
        for r in batches]))

    # Writes that failed.
    failed = _rows(conn, """SELECT idempotency_key, description, response_body, attempts
                            FROM ops.outbox WHERE status = 'failed' ORDER BY updated_at""")
    sections.append(Section("failed_writes", "Writes that failed", items=[
        Item(f"write:{r[0]}", _fp(r[2]), f"{r[1]} (attempt {r[3]}): {(r[2] or '')[:300]}")
        for r in failed]))

    # What this run wrote (events of this run: always new).
    written = run_report.get("confirmed") or []
    sections.append(Section("written", "Written to the source systems this run", items=[
        Item(f"written:{w['key']}:{w.get('remote_id')}", _fp(w.get("remote_id")),
             f"{w['description']} -> {w['system'].upper()} {w.get('remote_id')}"
             + (" (adopted after a lost answer)" if w.get("note") == "adopted" else ""))
        for w in written]))
    return sections


def new_items(conn, sections: list[Section]) -> list[Section]:
    """Each section with only the items not alerted unchanged within 24 hours."""
    recent = {r[0]: r[1] for r in conn.execute(
        "SELECT item_key, fingerprint FROM ops.alert_log WHERE last_alerted_at > now() - %s",
        (REALERT_AFTER,))}
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
        lines = [f"*{s.title}*" + (f" - {s.context}" if s.context else "")]
        lines += [f"• {i.line}" for i in s.items[:ITEMS_PER_SECTION]]
        if len(s.items) > ITEMS_PER_SECTION:
            lines.append(f"… and {len(s.items) - ITEMS_PER_SECTION} more")
        body = "\n".join(lines)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body[:2900]}})
    return {"text": text, "blocks": blocks}


def webhook_hook(**kwargs) -> SourceApiHook:
    """The hook of `alerts_webhook` (no auth: the secret is the path in `extra.path`)."""
    return SourceApiHook(WEBHOOK_CONN_ID, "none", "webhook", **kwargs)


def destination(hook: SourceApiHook) -> str:
    """Where messages go, without the webhook's secret (the path's last part)."""
    path = str(hook.extra("path"))
    head, _, _secret = path.rpartition("/")
    return f"{WEBHOOK_CONN_ID} ({hook.url(head or '/')}/…)"


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
