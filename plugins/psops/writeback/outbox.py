"""The outbox `ops.outbox`: every intended write, sent exactly once. Every status
change of a row is made here.

A row is planned once (its idempotency key is unique), then:

    awaiting_approval --decide--> pending (approved) | rejected | expired
    pending --mark sent (committed)--> request --answer--> confirmed
                                          |
                                          +-- no answer / 5xx --> look it up --> found: confirmed (adopted)
                                          |                                  --> absent: failed
                                          +-- 4xx --> failed (response body kept)
    failed / sent --next try--> sent again (lookup first, psops.writeback.delivery)
    failed on its PSOPS_OUTBOX_MAX_ATTEMPTS-th send --> dead (given up: never sent again;
        the last error kept, listed in the digest and the UI; once the cause is fixed,
        setting it back to `failed` with attempts = 0 sends it again, lookup first)

One applier at a time (a session advisory lock): the write-back and approval
DAGs may run at once, their writes never interleave.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal

from airflow.sdk.exceptions import AirflowFailException
from psycopg import sql
from psycopg.rows import class_row, dict_row, tuple_row
from psycopg.types.json import Jsonb

from psops.connectors.source_api_hook import SourceApiError
from psops.settings import OUTBOX_LOCK_KEY, OUTBOX_MAX_ATTEMPTS
from psops.writeback.delivery import WriteFailed, deliver, resolved_payload
from psops.writeback.source_writes import Found, SourceWrites

log = logging.getLogger(__name__)

KIND_ORDER = {"psa_project": 1, "erp_job": 2, "crm_deal_link": 3, "erp_billing_line": 4,
              "psa_time_entry_rate": 5}
KIND_LABELS = {"psa_project": "PSA project", "erp_job": "ERP job",
               "crm_deal_link": "CRM deal link", "erp_billing_line": "ERP billing line",
               "psa_time_entry_rate": "PSA rate fix"}
CREATING_KINDS = frozenset({"psa_project", "erp_job", "erp_billing_line"})
SENDABLE = ("pending", "sent", "failed")
STATUS_AFTER = {"approved": "pending", "rejected": "rejected", "expired": "expired"}
MAX_BODY_CHARS = 4000


@dataclass(frozen=True)
class PlannedWrite:
    """A write the planner intends, before it is in the outbox."""

    idempotency_key: str
    kind: str
    purpose: str  # 'deal_setup' | 'correction'
    system: str
    description: str
    payload: dict
    step: int = 1
    depends_on: str | None = None
    deal_id: str | None = None
    project_code: str | None = None
    record_key: str | None = None
    worth: Decimal = Decimal(0)
    currency: str | None = None


@dataclass(frozen=True)
class OutboxEntry:
    """An outbox row as the correction log records it."""

    id: int
    idempotency_key: str
    project_code: str | None
    kind: str
    worth: Decimal
    batch_id: str | None


@dataclass
class ApplyReport:
    confirmed: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    waiting: list[dict] = field(default_factory=list)
    dead: list[dict] = field(default_factory=list)  # given up in this try
    skipped: list[dict] = field(default_factory=list)  # stale before sending (skip_stale)

    def as_dict(self) -> dict:
        return {"confirmed": self.confirmed, "failed": self.failed, "waiting": self.waiting,
                "dead": self.dead, "skipped": self.skipped}


_RETURNING_ENTRY = sql.SQL("RETURNING id, idempotency_key, project_code, kind, worth, batch_id")


def add(conn, write: PlannedWrite, planned_by_run: str | None, *,
        decided_by: str | None = None, batch_id: str | None = None) -> OutboxEntry | None:
    """Plan a write: `pending` (decided by `decided_by`), or `awaiting_approval` in the
    approval batch `batch_id`. A key already in the outbox is left as it is (None)."""
    awaiting = batch_id is not None
    with conn.cursor(row_factory=class_row(OutboxEntry)) as cur:
        return cur.execute(
            sql.SQL("""INSERT INTO ops.outbox (idempotency_key, kind, purpose, system, step, depends_on,
                       deal_id, project_code, record_key, payload, worth, currency, description,
                       status, batch_id, decided_by, decided_at, planned_by_run)
                VALUES (%(key)s, %(kind)s, %(purpose)s, %(system)s, %(step)s, %(depends_on)s,
                        %(deal_id)s, %(project_code)s, %(record_key)s, %(payload)s, %(worth)s,
                        %(currency)s, %(description)s, %(status)s, %(batch_id)s, %(decided_by)s,
                        CASE WHEN %(awaiting)s THEN NULL ELSE now() END, %(run)s)
                ON CONFLICT (idempotency_key) DO NOTHING {returning}""").format(
                returning=_RETURNING_ENTRY),
            {"key": write.idempotency_key, "kind": write.kind, "purpose": write.purpose,
             "system": write.system, "step": write.step, "depends_on": write.depends_on,
             "deal_id": write.deal_id, "project_code": write.project_code,
             "record_key": write.record_key, "payload": Jsonb(write.payload),
             "worth": write.worth, "currency": write.currency, "description": write.description,
             "status": "awaiting_approval" if awaiting else "pending", "batch_id": batch_id,
             "decided_by": decided_by, "awaiting": awaiting, "run": planned_by_run}).fetchone()


def decide(conn, batch_ids: list[str], decision: str, decided_by: str,
           projects: list[str] | None = None) -> list[OutboxEntry]:
    """The batches' rows still awaiting approval (of `projects` only, when given) ->
    pending (approved), rejected or expired."""
    with conn.cursor(row_factory=class_row(OutboxEntry)) as cur:
        return cur.execute(
            sql.SQL("""UPDATE ops.outbox SET status = %(status)s, decided_by = %(decided_by)s,
                       decided_at = now(), updated_at = now()
                WHERE batch_id = ANY(%(batches)s) AND status = 'awaiting_approval'
                  AND (%(projects)s::text[] IS NULL OR project_code = ANY(%(projects)s))
                {returning}""").format(returning=_RETURNING_ENTRY),
            {"status": STATUS_AFTER[decision], "decided_by": decided_by, "batches": batch_ids,
             "projects": projects}).fetchall()


def apply_outbox(conn, writes: SourceWrites, *, purpose: str | None = None,
                 batch_id: str | None = None) -> ApplyReport:
    """Send every sendable row (of one purpose / batch), in dependency order."""
    report = ApplyReport()
    conn.execute("SELECT pg_advisory_lock(%s)", (OUTBOX_LOCK_KEY,))
    try:
        for row in _sendable_rows(conn, purpose, batch_id):
            dependency = _dependency(conn, row)
            if row["depends_on"] and (dependency is None or dependency["status"] != "confirmed"):
                report.waiting.append(_brief(row, f"waits for {row['depends_on']}"))
                continue
            _send_one(conn, writes, row, dependency, report)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (OUTBOX_LOCK_KEY,))
    return report


_OF_PURPOSE_AND_BATCH = sql.SQL("""(%(purpose)s::text IS NULL OR purpose = %(purpose)s)
             AND (%(batch_id)s::text IS NULL OR batch_id = %(batch_id)s)""")


def confirmed_since(conn, since, *, purpose: str | None = None,
                    batch_id: str | None = None) -> list[dict]:
    """The rows (of one purpose / batch) confirmed at or after `since`, as in
    ApplyReport.confirmed: what the earlier tries of a retried task wrote."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            sql.SQL("""SELECT * FROM ops.outbox
                WHERE status = 'confirmed' AND confirmed_at >= %(since)s AND {of_purpose_and_batch}
                ORDER BY confirmed_at, id""").format(of_purpose_and_batch=_OF_PURPOSE_AND_BATCH),
            {"since": since, "purpose": purpose, "batch_id": batch_id}).fetchall()
    return [{**_brief(row, "adopted" if row["adopted"] else ""), "remote_id": row["remote_id"]}
            for row in rows]


def skip_stale(conn, reason_to_skip, *, purpose: str | None = None,
               batch_id: str | None = None) -> list[dict]:
    """Before sending: each sendable row (of one purpose / batch) for which
    `reason_to_skip(row)` names a reason (its record is no longer what the plan saw,
    psops.writeback.delivery) -> `skipped`, never sent; the reason kept in response_body."""
    skipped = []
    conn.execute("SELECT pg_advisory_lock(%s)", (OUTBOX_LOCK_KEY,))
    try:
        for row in _sendable_rows(conn, purpose, batch_id):
            reason = reason_to_skip(row)
            if reason is None:
                continue
            with conn.transaction():
                conn.execute("""UPDATE ops.outbox SET status = 'skipped', response_body = %s,
                                       response_status = NULL, updated_at = now() WHERE id = %s""",
                             (reason[:MAX_BODY_CHARS], row["id"]))
            log.warning("outbox %s: SKIPPED, not sent: %s", row["idempotency_key"], reason)
            skipped.append(_brief(row, reason))
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (OUTBOX_LOCK_KEY,))
    return skipped


def _sendable_rows(conn, purpose, batch_id) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            sql.SQL("SELECT * FROM ops.outbox WHERE status = ANY(%(sendable)s) AND {of_purpose_and_batch}"
                    ).format(of_purpose_and_batch=_OF_PURPOSE_AND_BATCH),
            {"sendable": list(SENDABLE), "purpose": purpose, "batch_id": batch_id}).fetchall()
    return sorted(rows, key=lambda row: (row["purpose"] != "deal_setup", row["deal_id"] or "",
                                         row["step"], KIND_ORDER[row["kind"]], row["id"]))


def _dependency(conn, row) -> dict | None:
    if not row["depends_on"]:
        return None
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT status, remote_id, kind, payload FROM ops.outbox WHERE idempotency_key = %s",
            (row["depends_on"],)).fetchone()


def _brief(row: dict, note: str = "") -> dict:
    return {"key": row["idempotency_key"], "kind": row["kind"], "system": row["system"],
            "project_code": row["project_code"], "deal_id": row["deal_id"],
            "description": row["description"], "worth": float(row["worth"] or 0),
            "currency": row["currency"], "remote_id": row.get("remote_id"), "note": note}


def _send_one(conn, writes: SourceWrites, row: dict, dependency: dict | None,
              report: ApplyReport) -> None:
    payload = resolved_payload(row, dependency)
    _mark_sent(conn, row["id"], payload)
    try:
        found, adopted = deliver(writes, row, payload)
    except (WriteFailed, SourceApiError, AirflowFailException) as err:
        body = str(err)[:MAX_BODY_CHARS]
        status, attempts = _mark_failed(conn, row["id"], body)
        if status == "dead":
            log.error("outbox %s: DEAD, given up after %d attempts: %s",
                      row["idempotency_key"], attempts, body)
            report.dead.append(_brief(row, f"given up after {attempts} attempts: {body}"))
        else:
            log.warning("outbox %s: FAILED: %s", row["idempotency_key"], body)
            report.failed.append(_brief(row, body))
        return
    _mark_confirmed(conn, row["id"], found, adopted)
    log.info("outbox %s: confirmed (%s %s)%s", row["idempotency_key"], row["system"].upper(),
             found.remote_id, " - adopted after lookup" if adopted else "")
    report.confirmed.append({**_brief(row, "adopted" if adopted else ""),
                             "remote_id": found.remote_id})


def _mark_sent(conn, outbox_id: int, payload: dict) -> None:
    """Committed BEFORE the request: a crash after it leaves the row `sent`."""
    with conn.transaction():
        conn.execute(
            """UPDATE ops.outbox SET status = 'sent', attempts = attempts + 1, payload = %s,
                      sent_at = now(), updated_at = now() WHERE id = %s""",
            (json.dumps(payload), outbox_id))


def _mark_failed(conn, outbox_id: int, body: str) -> tuple[str, int]:
    """`failed` (sent again by the next try), or `dead` once the row has been sent
    PSOPS_OUTBOX_MAX_ATTEMPTS times: the body (the last error) is the reason. Returns
    the status and the attempts."""
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(
            """UPDATE ops.outbox
               SET status = CASE WHEN attempts >= %s THEN 'dead' ELSE 'failed' END,
                   response_body = %s, response_status = %s, updated_at = now()
               WHERE id = %s RETURNING status, attempts""",
            (OUTBOX_MAX_ATTEMPTS.integer(), body, _status_in(body), outbox_id)).fetchone()


def _mark_confirmed(conn, outbox_id: int, found: Found, adopted: bool) -> None:
    with conn.transaction():
        conn.execute(
            """UPDATE ops.outbox SET status = 'confirmed', remote_id = %s, adopted = %s,
                      response_body = %s, response_status = NULL, confirmed_at = now(),
                      updated_at = now() WHERE id = %s""",
            (found.remote_id, adopted, json.dumps(found.record)[:MAX_BODY_CHARS], outbox_id))


def _status_in(message: str) -> int | None:
    """The HTTP status (4xx / 5xx) an error message names, if any."""
    for token in message.replace(":", " ").split():
        if token.isdigit() and len(token) == 3 and token[0] in "45":
            return int(token)
    return None
