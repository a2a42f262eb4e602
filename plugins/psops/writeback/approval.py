"""Approval of large corrections: the one owner of an approval batch's lifecycle.

* hold (`submit`): a project's new corrections of one psops_writeback run wait for
  finance as one batch per run (`ops.approval_batches`, rows `awaiting_approval` in
  `ops.outbox`) when, with the project's corrections approved within the last
  PSOPS_APPROVAL_WINDOW_DAYS (applied or not), they are worth more than
  PSOPS_APPROVAL_THRESHOLD: a daily trickle below the threshold is held once it adds
  up. The others are approved automatically.
* show (`describe_batch`): what finance sees in psops_approve_corrections'
  human-in-the-loop task.
* decide (`record_decision`): Approve -> the batch's rows become `pending`
  (decided_by = the user), to be applied at once; projects listed in the form field
  `reject_projects` are rejected instead. Reject -> rows `rejected`. No answer before the
  timeout -> `expired` (= rejected).
* expire (`expire_stale`): a batch left unanswered past PSOPS_APPROVAL_TIMEOUT_MINUTES is
  expired by the next psops_writeback run, so expiry does not depend on the scheduler.

Every transition of a batch is ONE conditional UPDATE of its `ops.approval_batches` row
(`WHERE status = 'awaiting_approval'` and, for an answer, `expires_at >` the time the
person answered (`responded_at`; now() when unknown); for the
expiry `expires_at <= now()`), and the outbox rows follow in the same transaction, only
when it returned the batch. Concurrent transitions (an expiry and an approval, two
answers) queue on that row: exactly one wins, the other matches nothing. An answer that
matches nothing came too late (after the expiry, or after another decision): nothing is
recorded or applied and the approver is told so (`too_late` in the outcome).

Every decision (automatic, held, approved, rejected, expired) is one row of
`ops.correction_log`, written by `_log`.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from psycopg.rows import dict_row, scalar_row, tuple_row

from psops.formatting import markdown_cell, money, worth_text
from psops.settings import APPROVAL_THRESHOLD, APPROVAL_TIMEOUT_MINUTES, APPROVAL_WINDOW_DAYS
from psops.writeback import outbox
from psops.writeback.decisions import APPROVE, REJECT
from psops.writeback.outbox import CREATING_KINDS, KIND_LABELS, OutboxEntry, PlannedWrite

log = logging.getLogger(__name__)

EXPIRED_BY = "expired: no answer in time"
MAX_LINES = 60


def threshold() -> Decimal:
    """A project's corrections worth more than this within the window wait for finance."""
    return APPROVAL_THRESHOLD.decimal()


def window_days() -> int:
    """The rolling window (days) over which a project's approved corrections add up."""
    return APPROVAL_WINDOW_DAYS.integer()


def timeout() -> timedelta:
    """An approval left unanswered this long expires as rejected."""
    return APPROVAL_TIMEOUT_MINUTES.minutes()


# -- hold -----------------------------------------------------------------------------

@dataclass
class Submission:
    batch_id: str | None = None
    held: list[PlannedWrite] = field(default_factory=list)
    approved: list[PlannedWrite] = field(default_factory=list)


def submit(conn, corrections: list[PlannedWrite], dag_run_id: str | None) -> Submission:
    """Put a run's new corrections in the outbox: held in one new batch, or approved."""
    worth_by_project: dict[str, Decimal] = defaultdict(Decimal)
    for write in corrections:
        worth_by_project[write.project_code] += Decimal(write.worth)
    limit = threshold()
    with conn.transaction():
        recent = approved_within_window(conn, list(worth_by_project))
        in_window = {project: worth + recent.get(project, Decimal(0))
                     for project, worth in worth_by_project.items()}
        held_projects = {project for project, worth in in_window.items() if worth > limit}
        submission = Submission(batch_id=_new_batch_id() if held_projects else None)
        for write in corrections:
            worth = (f"project worth {money(in_window[write.project_code])} within "
                     f"{window_days()} days ({money(worth_by_project[write.project_code])} new)")
            if write.project_code in held_projects:
                reason = f"threshold: {worth} > {money(limit)}"
                entry = outbox.add(conn, write, dag_run_id, batch_id=submission.batch_id)
                decision, submitted = "held_for_approval", submission.held
            else:
                reason = f"auto: {worth} <= threshold {money(limit)}"
                entry = outbox.add(conn, write, dag_run_id, decided_by=reason)
                decision, submitted = "auto_approved", submission.approved
            if entry is not None:
                _log(conn, [entry], decision, reason, dag_run_id)
                submitted.append(write)
        if submission.batch_id:
            held = [write for write in corrections if write.project_code in held_projects]
            _open_batch(conn, submission.batch_id,
                        sum((worth_by_project[p] for p in held_projects), Decimal(0)), len(held))
    return submission


def approved_within_window(conn, projects: list[str]) -> dict[str, Decimal]:
    """Per project, the worth of its corrections approved WITHOUT a person within the
    rolling window (no batch: nobody reviewed them) that were applied or are on their way;
    what finance reviewed, and what was rejected, expired, skipped or given up, does not
    count."""
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(
            """SELECT project_code, sum(worth) FROM ops.outbox
               WHERE purpose = 'correction' AND project_code = ANY(%s) AND batch_id IS NULL
                 AND status IN ('pending', 'sent', 'confirmed', 'failed')
                 AND decided_at > now() - make_interval(days => %s)
               GROUP BY project_code""", (projects, window_days())).fetchall()
    return {project: Decimal(worth) for project, worth in rows}


def _new_batch_id() -> str:
    return f"corr-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"


def _open_batch(conn, batch_id: str, total_worth: Decimal, corrections: int) -> None:
    conn.execute(
        """INSERT INTO ops.approval_batches (batch_id, expires_at, status, total_worth,
                  corrections) VALUES (%s, now() + %s, 'awaiting_approval', %s, %s)""",
        (batch_id, timeout(), total_worth, corrections))


def _log(conn, entries: list[OutboxEntry], decision: str, decided_by: str,
         dag_run_id: str | None) -> None:
    """The one writer of ops.correction_log."""
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO ops.correction_log (outbox_id, idempotency_key, project_code, kind,
                      worth, decision, decided_by, batch_id, dag_run_id)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            [(entry.id, entry.idempotency_key, entry.project_code, entry.kind, entry.worth,
              decision, decided_by, entry.batch_id, dag_run_id) for entry in entries])


def _decide_rows(conn, batch_ids: list[str], decision: str, decided_by: str,
                 dag_run_id: str | None, projects: list[str] | None = None) -> int:
    entries = outbox.decide(conn, batch_ids, decision, decided_by, projects)
    _log(conn, entries, decision, decided_by, dag_run_id)
    return len(entries)


# -- expire ---------------------------------------------------------------------------

def expire_stale(conn, dag_run_id: str | None = None) -> list[str]:
    """Batches awaiting approval past their expiry: rejected as expired (logged)."""
    with conn.transaction(), conn.cursor(row_factory=scalar_row) as cur:
        expired = cur.execute(
            """UPDATE ops.approval_batches SET status = 'expired', decided_at = now(),
                      decided_by = 'expired: no answer before ' || to_char(expires_at,
                                   'YYYY-MM-DD HH24:MI "UTC"')
               WHERE status = 'awaiting_approval' AND expires_at <= now()
               RETURNING batch_id""").fetchall()
        if expired:
            _decide_rows(conn, expired, "expired", EXPIRED_BY, dag_run_id)
    return expired


# -- show -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitingBatch:
    batch_id: str
    corrections: int
    expires_at: datetime
    worth: str  # per currency (worth_text)


def waiting_batches(conn) -> list[WaitingBatch]:
    """The batches awaiting finance, oldest first, each with its worth per currency."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("""
            SELECT b.batch_id, b.corrections, b.expires_at,
                   (SELECT jsonb_agg(jsonb_build_object('worth', o.worth, 'currency', o.currency))
                    FROM ops.outbox o WHERE o.batch_id = b.batch_id) AS changes
            FROM ops.approval_batches b WHERE b.status = 'awaiting_approval'
            ORDER BY b.created_at""").fetchall()
    return [WaitingBatch(row["batch_id"], row["corrections"], row["expires_at"],
                         worth_text(row["changes"] or [])) for row in rows]


def oldest_waiting_batch(conn) -> str | None:
    with conn.cursor(row_factory=scalar_row) as cur:
        return cur.execute("""SELECT batch_id FROM ops.approval_batches
                              WHERE status = 'awaiting_approval'
                              ORDER BY created_at LIMIT 1""").fetchone()


def describe_batch(conn, batch_id: str | None) -> dict:
    """Subject and Markdown body of the approval request for one batch (the oldest
    awaiting batch when none is given)."""
    batch_id = batch_id or oldest_waiting_batch(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        batch = cur.execute("""SELECT status, expires_at, created_at, expires_at <= now() AS overdue
                               FROM ops.approval_batches WHERE batch_id = %s""",
                            (batch_id,)).fetchone()
        if batch is None or batch["status"] != "awaiting_approval" or batch["overdue"]:
            state = ("not found" if batch is None else
                     f"past its expiry ({batch['expires_at']:%Y-%m-%d %H:%M} UTC)"
                     if batch["status"] == "awaiting_approval" else batch["status"])
            return {"batch_id": batch_id, "pending": False, "subject": "", "body": "",
                    "summary": f"approval batch {batch_id or '-'} is {state}: nothing to decide"}
        changes = cur.execute(
            """SELECT project_code, kind, description, worth, currency
               FROM ops.outbox WHERE batch_id = %s AND status = 'awaiting_approval'
               ORDER BY project_code, kind, worth DESC, id""", (batch_id,)).fetchall()
    by_project: dict[str, list[dict]] = defaultdict(list)
    for change in changes:
        by_project[change["project_code"]].append(change)
    projects = ", ".join(by_project)
    total = worth_text(changes)
    return {"batch_id": batch_id, "pending": True,
            "subject": f"Approve {len(changes)} billing corrections worth {total} ({projects})?",
            "body": _request_body(batch_id, batch, by_project, total),
            "projects": list(by_project),
            "summary": f"approval batch {batch_id}: {len(changes)} corrections worth "
                       f"{total} for {projects} shown to finance"}


def _request_body(batch_id: str, batch: dict, by_project: dict[str, list[dict]],
                  total: str) -> str:
    count = sum(len(changes) for changes in by_project.values())
    lines = [
        f"**{count} corrections worth {total} in total** are waiting "
        f"for your decision (batch `{batch_id}`, planned {batch['created_at']:%Y-%m-%d %H:%M} UTC).",
        "",
        "Each project below changed billable money by more than the approval threshold in one "
        "write-back run. **Approve** writes the changes to the PSA / ERP now; **Reject** discards "
        "them. To approve all but some projects, put their codes in *reject_projects* "
        "(comma-separated) and Approve.",
        f"If nobody answers by **{batch['expires_at']:%Y-%m-%d %H:%M} UTC** the batch expires "
        "as rejected.",
        "",
        "| project | change | worth |",
        "|---|---|---:|",
    ]
    shown = 0
    for project, changes in by_project.items():
        subtotal = worth_text(changes, currency_codes=True)
        lines.append(f"| **{markdown_cell(project)}** | **{len(changes)} changes** | "
                     f"**{subtotal}** |")
        for change in changes:
            if shown < MAX_LINES:
                lines.append(f"| {markdown_cell(project)} | {_change_label(change['kind'])}: "
                             f"{markdown_cell(change['description'])} | "
                             f"{money(change['worth'])} {change['currency']} |")
                shown += 1
    if count > shown:
        lines.append(f"\n… and {count - shown} more (all of them: `ops.outbox` where "
                     f"batch_id = '{batch_id}').")
    return "\n".join(lines)


def _change_label(kind: str) -> str:
    label = KIND_LABELS.get(kind, kind)
    return f"new {label}" if kind in CREATING_KINDS else label


# -- decide ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    decision: str  # approved | rejected | expired
    decided_by: str
    reject_projects: list[str]


def decision_from_answer(answer: dict | None, approval_run_id: str) -> Decision:
    """What finance's answer to the human-in-the-loop task (its XCom) decides. An answer
    without a user (the task timed out, or resolved with its default) is an expiry."""
    answer = answer or {}
    chosen = answer.get("chosen_options") or []
    user = _responding_user(answer)
    by_user = f"finance: {user} (Airflow UI, run {approval_run_id})"
    if user and chosen == [APPROVE]:
        raw = str((answer.get("params_input") or {}).get("reject_projects") or "")
        rejected = [code.strip() for code in raw.replace(";", ",").split(",") if code.strip()]
        return Decision("approved", by_user, rejected)
    if user and chosen == [REJECT]:
        return Decision("rejected", by_user, [])
    return Decision("expired", f"{EXPIRED_BY} (run {approval_run_id})", [])


def _responding_user(answer: dict) -> str | None:
    user = answer.get("responded_by_user") or answer.get("responded_by")
    if isinstance(user, dict):
        return user.get("name") or user.get("id")
    return str(user) if user else None


def record_decision(conn, described: dict, answer: dict | None, approval_run_id: str) -> dict:
    """Turn the answer into outbox decisions; returns whether the batch's approved rows
    should be applied now, and `too_late` (what to tell the approver) when the answer
    came after the batch expired or was decided."""
    batch_id = described.get("batch_id")
    if not described.get("pending"):
        return _outcome(batch_id, "not decided", "nobody (nothing awaiting approval)")
    chosen = decision_from_answer(answer, approval_run_id)
    with conn.transaction():
        decided = _close_batch(conn, batch_id, chosen, approval_run_id, answered_at(answer))
        rows = 0
        if decided and chosen.reject_projects:
            rows += _decide_rows(conn, [batch_id], "rejected",
                                 f"{chosen.decided_by} (reject_projects)", approval_run_id,
                                 chosen.reject_projects)
        if decided:
            rows += _decide_rows(conn, [batch_id], chosen.decision, chosen.decided_by,
                                 approval_run_id)
    if not decided:
        return _not_decided(conn, batch_id, chosen, answer, approval_run_id)
    log.info("batch %s %s by %s (%d corrections%s)", batch_id, chosen.decision,
             chosen.decided_by, rows,
             f"; rejected projects {chosen.reject_projects}" if chosen.reject_projects else "")
    return _outcome(batch_id, chosen.decision, chosen.decided_by, rows,
                    apply=chosen.decision == "approved")


def _outcome(batch_id: str | None, decision: str, decided_by: str, rows: int = 0, *,
             apply: bool = False, too_late: str | None = None) -> dict:
    return {"apply": apply, "batch_id": batch_id, "decision": decision,
            "decided_by": decided_by, "rows": rows, "too_late": too_late}


def _close_batch(conn, batch_id: str, chosen: Decision, approval_run_id: str,
                 answered_at: datetime | None) -> bool:
    """The batch's one transition on an answer: True when this answer decided it. A
    person's answer counts only when it was given before expires_at (its time in Airflow,
    so a retried task still honours an answer given in time; now() when unknown); the
    approval run ending without one expires the batch at once (nobody can answer it any
    more)."""
    with conn.cursor(row_factory=scalar_row) as cur:
        return cur.execute(
            """UPDATE ops.approval_batches SET status = %(status)s, decided_by = %(by)s,
                      decided_at = now(), approval_run_id = %(run)s
               WHERE batch_id = %(batch)s AND status = 'awaiting_approval'
                 AND (%(no_answer)s OR expires_at > coalesce(%(answered_at)s, now()))
               RETURNING batch_id""",
            {"status": chosen.decision, "by": chosen.decided_by, "run": approval_run_id,
             "batch": batch_id, "no_answer": chosen.decision == "expired",
             "answered_at": answered_at}).fetchone() is not None


def answered_at(answer: dict | None) -> datetime | None:
    """When the person answered (the human-in-the-loop result's `responded_at`)."""
    moment = (answer or {}).get("responded_at")
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return None
    if isinstance(moment, datetime) and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment if isinstance(moment, datetime) else None


def _not_decided(conn, batch_id: str, chosen: Decision, answer: dict | None,
                 approval_run_id: str) -> dict:
    """The answer matched no batch awaiting approval. Decided by an earlier try of this
    approval run (a retried task): apply what it approved. No answer at all: the batch's
    own state stands. Otherwise a person answered too late: nothing is recorded or
    applied (a batch past its expiry is expired now)."""
    expire_stale(conn, approval_run_id)
    with conn.cursor(row_factory=dict_row) as cur:
        batch = cur.execute("""SELECT status, decided_by, decided_at, expires_at, approval_run_id
                               FROM ops.approval_batches WHERE batch_id = %s""",
                            (batch_id,)).fetchone()
    if batch["approval_run_id"] == approval_run_id:
        return _outcome(batch_id, batch["status"], "an earlier try of this approval run",
                        apply=batch["status"] == "approved")
    if chosen.decision == "expired":  # nobody answered: nobody to tell
        return _outcome(batch_id, batch["status"], f"an earlier decision ({batch['decided_by']})")
    message = _too_late_message(batch_id, batch, answer)
    log.warning("%s", message)
    return _outcome(batch_id, "too late", chosen.decided_by, too_late=message)


def _too_late_message(batch_id: str, batch: dict, answer: dict | None) -> str:
    options = "/".join((answer or {}).get("chosen_options") or []) or "no answer"
    user = _responding_user(answer or {}) or "nobody"
    yours = f"your answer ({options} by {user})"
    if batch["status"] == "expired":
        what = f"expired at {batch['expires_at']:%Y-%m-%d %H:%M} UTC, before {yours}"
    else:
        what = (f"was already {batch['status']} by {batch['decided_by']} at "
                f"{batch['decided_at']:%Y-%m-%d %H:%M} UTC, before {yours}")
    return (f"Too late: approval batch {batch_id} {what}; nothing was recorded and nothing "
            f"was applied.")
