"""psops_approve_corrections: what finance is shown, and what their answer does.

psops_writeback holds a project's corrections when they are worth more than the
threshold, as one batch per run (`ops.approval_batches`, rows `awaiting_approval`
in `ops.outbox`), and triggers a run of psops_approve_corrections with the batch
id. There a human-in-the-loop task shows the list of changes; the answer:

* Approve -> the batch's rows become `pending` (decided_by = the user) and are
  applied at once through the same outbox (exactly once, lookup-then-adopt);
  projects listed in the form field `reject_projects` are rejected instead;
* Reject -> rows `rejected` (decided_by = the user), nothing is written;
* no answer before the timeout -> `expired` (= rejected), whether the scheduler
  times the task out or a later psops_writeback run finds the batch stale.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from psops.writeback.planner import decide_batch_rows

log = logging.getLogger(__name__)

APPROVE = "Approve"
REJECT = "Reject"
MAX_LINES = 60
KIND_LABEL = {"erp_job": "new ERP job", "erp_billing_line": "new ERP billing line",
              "psa_time_entry_rate": "PSA rate fix"}


def _m(value) -> str:
    return f"{float(value or 0):,.2f}"


def describe_batch(conn, batch_id: str | None) -> dict:
    """Subject and Markdown body of the approval request for one batch (the oldest
    awaiting batch when none is given)."""
    if not batch_id:
        row = conn.execute("""SELECT batch_id FROM ops.approval_batches
                              WHERE status = 'awaiting_approval' ORDER BY created_at LIMIT 1""").fetchone()
        batch_id = row[0] if row else None
    batch = conn.execute("""SELECT status, expires_at, total_worth, corrections, created_at
                            FROM ops.approval_batches WHERE batch_id = %s""", (batch_id,)).fetchone()
    if batch is None or batch[0] != "awaiting_approval":
        state = "not found" if batch is None else batch[0]
        return {"batch_id": batch_id, "pending": False, "subject": "", "body": "",
                "summary": f"approval batch {batch_id or '-'} is {state}: nothing to decide"}
    rows = conn.execute(
        """SELECT project_code, kind, description, worth, currency
           FROM ops.outbox WHERE batch_id = %s AND status = 'awaiting_approval'
           ORDER BY project_code, kind, worth DESC, id""", (batch_id,)).fetchall()
    per_project: dict[str, list] = defaultdict(list)
    for r in rows:
        per_project[r[0]].append(r)
    lines = [
        f"**{len(rows)} corrections worth {_m(batch[2])} in total** are waiting for your decision "
        f"(batch `{batch_id}`, planned {batch[4]:%Y-%m-%d %H:%M} UTC).",
        "",
        "Each project below changed billable money by more than the approval threshold in one "
        "write-back run. **Approve** writes the changes to the PSA / ERP now; **Reject** discards "
        "them. To approve all but some projects, put their codes in *reject_projects* "
        "(comma-separated) and Approve.",
        f"If nobody answers by **{batch[1]:%Y-%m-%d %H:%M} UTC** the batch expires as rejected.",
        "",
        "| project | change | worth |",
        "|---|---|---:|",
    ]
    shown = 0
    for project, items in per_project.items():
        total = sum(float(i[3]) for i in items)
        lines.append(f"| **{project}** | **{len(items)} changes** | **{_m(total)} {items[0][4]}** |")
        for i in items:
            if shown < MAX_LINES:
                lines.append(f"| {project} | {KIND_LABEL.get(i[1], i[1])}: {i[2]} | "
                             f"{_m(i[3])} {i[4]} |")
                shown += 1
    if len(rows) > shown:
        lines.append(f"\n… and {len(rows) - shown} more (all of them: `ops.outbox` where "
                     f"batch_id = '{batch_id}').")
    projects = ", ".join(per_project)
    subject = f"Approve {len(rows)} billing corrections worth {_m(batch[2])} ({projects})?"
    return {"batch_id": batch_id, "pending": True, "subject": subject, "body": "\n".join(lines),
            "projects": list(per_project),
            "summary": f"approval batch {batch_id}: {len(rows)} corrections worth "
                       f"{_m(batch[2])} for {projects} shown to finance"}


def _user(answer: dict) -> str | None:
    user = answer.get("responded_by_user") or answer.get("responded_by")
    if isinstance(user, dict):
        return user.get("name") or user.get("id")
    return str(user) if user else None


def record_decision(conn, described: dict, context) -> dict:
    """Turn the human-in-the-loop answer (XCom of `finance_approval`) into outbox
    decisions; returns whether the batch's approved rows should be applied now."""
    batch_id = described.get("batch_id")
    run_id = context["run_id"]
    if not described.get("pending"):
        return {"apply": False, "batch_id": batch_id, "decision": "not decided",
                "decided_by": "nobody (nothing awaiting approval)", "rows": 0}
    answer = context["ti"].xcom_pull(task_ids="finance_approval") or {}
    chosen = answer.get("chosen_options") or []
    user = _user(answer)
    status = conn.execute("SELECT status FROM ops.approval_batches WHERE batch_id = %s",
                          (batch_id,)).fetchone()[0]
    if status != "awaiting_approval":
        return {"apply": status == "approved", "batch_id": batch_id, "decision": status,
                "decided_by": "an earlier decision", "rows": 0}
    if user and chosen == [APPROVE]:
        decision, decided_by = "approved", f"finance: {user} (Airflow UI, run {run_id})"
    elif user and chosen == [REJECT]:
        decision, decided_by = "rejected", f"finance: {user} (Airflow UI, run {run_id})"
    else:
        decision, decided_by = "expired", f"expired: no answer in time (run {run_id})"
    excluded = []
    if decision == "approved":
        raw = str((answer.get("params_input") or {}).get("reject_projects") or "")
        excluded = [p.strip() for p in raw.replace(";", ",").split(",") if p.strip()]
    with conn.transaction():
        conn.execute("""UPDATE ops.approval_batches SET status = %s, decided_by = %s,
                               decided_at = now(), approval_run_id = %s WHERE batch_id = %s""",
                     (decision, decided_by, run_id, batch_id))
        rows = 0
        if excluded:
            rows += _reject_projects(conn, batch_id, excluded, decided_by, run_id)
        rows += decide_batch_rows(conn, [batch_id], decision, decided_by, run_id)
    log.info("batch %s %s by %s (%d corrections%s)", batch_id, decision, decided_by, rows,
             f"; rejected projects {excluded}" if excluded else "")
    return {"apply": decision == "approved", "batch_id": batch_id, "decision": decision,
            "decided_by": decided_by, "rows": rows}


def _reject_projects(conn, batch_id: str, projects: list[str], decided_by: str, run_id: str) -> int:
    rows = conn.execute(
        """UPDATE ops.outbox SET status = 'rejected', decided_by = %s, decided_at = now(),
                  updated_at = now()
           WHERE batch_id = %s AND status = 'awaiting_approval' AND project_code = ANY(%s)
           RETURNING id, idempotency_key, project_code, kind, worth""",
        (decided_by + " (reject_projects)", batch_id, projects)).fetchall()
    for row in rows:
        conn.execute(
            """INSERT INTO ops.correction_log (outbox_id, idempotency_key, project_code, kind,
                      worth, decision, decided_by, batch_id, dag_run_id)
               VALUES (%s, %s, %s, %s, %s, 'rejected', %s, %s, %s)""",
            (*row, decided_by + " (reject_projects)", batch_id, run_id))
    return len(rows)
