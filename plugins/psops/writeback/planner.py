"""Planning: what the source systems should be told, written to the outbox once.

* Deal-to-project set-up: each valid candidate deal gets three outbox rows, in
  order: PSA project (step 1), ERP job (step 2, needs the PSA id), CRM deal link
  (step 3, after the job; carries the PSA id). An invalid one goes to `ops.exceptions`
  (`deal.setup_invalid`, a warning: the deal stays in the marts) and the alert.
* Corrections (include/sql/writeback/corrections.sql): a project's NEW corrections of
  this run worth more than the threshold in total wait for finance
  (`awaiting_approval`, one batch per run); the others are approved automatically.
* Expiry: a batch left unanswered longer than the approval timeout is expired as
  rejected here too, so expiry does not depend on the scheduler.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from psycopg.types.json import Jsonb

from psops.transform.sql_files import read_sql
from psops.writeback.outbox import KIND_ORDER
from psops.writeback.source_writes import SourceWrites

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = Decimal("1000")
DEFAULT_APPROVAL_TIMEOUT_MINUTES = 24 * 60
DEAL_RULE = "deal.setup_invalid"
CODE = re.compile(r"^PRJ-(\d{5})$")


def approval_threshold() -> Decimal:
    """Corrections of one project in one run worth more than this wait for finance."""
    return Decimal(os.environ.get("PSOPS_APPROVAL_THRESHOLD", DEFAULT_THRESHOLD))


def approval_timeout() -> timedelta:
    """An approval left unanswered this long expires as rejected."""
    return timedelta(minutes=float(os.environ.get("PSOPS_APPROVAL_TIMEOUT_MINUTES",
                                                  DEFAULT_APPROVAL_TIMEOUT_MINUTES)))


@dataclass
class Plan:
    as_of: date
    new_setups: list[dict] = field(default_factory=list)
    invalid_deals: list[dict] = field(default_factory=list)
    auto_corrections: list[dict] = field(default_factory=list)
    held_corrections: list[dict] = field(default_factory=list)
    infeasible_corrections: list[dict] = field(default_factory=list)
    batch_id: str | None = None
    expired_batches: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "new_setups": self.new_setups,
                "invalid_deals": self.invalid_deals, "auto_corrections": self.auto_corrections,
                "held_corrections": self.held_corrections,
                "infeasible_corrections": self.infeasible_corrections,
                "batch_id": self.batch_id, "expired_batches": self.expired_batches}


def _rows(cur) -> list[dict]:
    names = [d.name for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _money(value) -> float:
    return float(value or 0)


# -- expiry -----------------------------------------------------------------------

def expire_stale_batches(conn, dag_run_id: str | None = None) -> list[str]:
    """Batches awaiting approval past their expiry: rejected as expired (logged)."""
    with conn.transaction():
        expired = [r[0] for r in conn.execute(
            """UPDATE ops.approval_batches SET status = 'expired', decided_at = now(),
                      decided_by = 'expired: no answer before ' || to_char(expires_at,
                                   'YYYY-MM-DD HH24:MI "UTC"')
               WHERE status = 'awaiting_approval' AND expires_at <= now()
               RETURNING batch_id""").fetchall()]
        if expired:
            decide_batch_rows(conn, expired, "expired", "expired: no answer in time", dag_run_id)
    return expired


def decide_batch_rows(conn, batch_ids: list[str], decision: str, decided_by: str,
                      dag_run_id: str | None) -> int:
    """Outbox rows of the batches still awaiting approval -> pending (approved) or
    rejected / expired; each decision logged in ops.correction_log."""
    new_status = {"approved": "pending", "rejected": "rejected", "expired": "expired"}[decision]
    rows = conn.execute(
        """UPDATE ops.outbox SET status = %s, decided_by = %s, decided_at = now(),
                  updated_at = now()
           WHERE batch_id = ANY(%s) AND status = 'awaiting_approval'
           RETURNING id, idempotency_key, project_code, kind, worth, batch_id""",
        (new_status, decided_by, batch_ids)).fetchall()
    for row in rows:
        conn.execute(
            """INSERT INTO ops.correction_log (outbox_id, idempotency_key, project_code, kind,
                      worth, decision, decided_by, batch_id, dag_run_id)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (*row[:5], decision, decided_by, row[5], dag_run_id))
    return len(rows)


# -- deal-to-project set-up -----------------------------------------------------------

def _record_invalid_deals(conn, invalid: list[dict], as_of: date) -> None:
    for deal in invalid:
        details = {"reasons": deal["reasons"], "deal_name": deal["deal_name"],
                   "company_id": deal["company_id"], "amount": _money(deal["amount"]),
                   "billing_type": deal["billing_type"], "region": deal["region"]}
        conn.execute(
            """INSERT INTO ops.exceptions AS e (rule_id, severity, source_system, entity,
                      record_key, details, first_seen_at, last_seen_at, status, first_as_of,
                      last_as_of)
               VALUES (%s, 'warning', 'crm', 'deal', %s, %s, now(), now(), 'open', %s, %s)
               ON CONFLICT (rule_id, entity, record_key) WHERE status = 'open'
               DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at, details = EXCLUDED.details,
                             times_seen = e.times_seen + 1, last_as_of = EXCLUDED.last_as_of""",
            (DEAL_RULE, deal["deal_id"], Jsonb(details), as_of, as_of))
    conn.execute(
        """UPDATE ops.exceptions SET status = 'resolved', resolved_at = now()
           WHERE rule_id = %s AND status = 'open' AND NOT (record_key = ANY(%s))""",
        (DEAL_RULE, [d["deal_id"] for d in invalid]))


def _highest_code_number(conn, writes: SourceWrites) -> int:
    """The highest project code the PSA has: the warehouse's, codes this outbox already
    gave out, and the PSA's projects changed since the warehouse last saw one."""
    known = [r[0] for r in conn.execute(
        """SELECT code FROM curated.projects
           UNION SELECT payload->>'code' FROM ops.outbox WHERE kind = 'psa_project'""")]
    since = conn.execute("SELECT max(source_updated_at) FROM curated.projects").fetchone()[0]
    known += writes.project_codes_updated_since(
        since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if since else None)
    numbers = [int(m.group(1)) for code in known if code and (m := CODE.match(code))]
    return max(numbers, default=0)


def plan_deal_setups(conn, writes: SourceWrites, plan: Plan, dag_run_id: str | None) -> None:
    candidates = _rows(conn.execute(read_sql("writeback/deal_setup_candidates.sql")))
    invalid = [d for d in candidates if d["reasons"]]
    with conn.transaction():
        _record_invalid_deals(conn, invalid, plan.as_of)
    plan.invalid_deals = [{"deal_id": d["deal_id"], "deal_name": d["deal_name"],
                           "reasons": d["reasons"], "amount": _money(d["amount"]),
                           "currency": d["currency"]} for d in invalid]
    planned = {r[0] for r in conn.execute(
        "SELECT deal_id FROM ops.outbox WHERE kind = 'psa_project'")}
    valid = [d for d in candidates if not d["reasons"] and d["deal_id"] not in planned]
    if not valid:
        return
    next_number = _highest_code_number(conn, writes) + 1
    for deal in valid:
        code = f"PRJ-{next_number:05d}"
        next_number += 1
        _insert_setup(conn, deal, code, dag_run_id)
        plan.new_setups.append({"deal_id": deal["deal_id"], "deal_name": deal["deal_name"],
                                "project_code": code, "billing_type": deal["billing_type"],
                                "amount": _money(deal["amount"]), "currency": deal["currency"]})


def _insert_setup(conn, deal: dict, code: str, dag_run_id: str | None) -> None:
    deal_id = deal["deal_id"]
    project_key = f"psa.project:deal:{deal_id}"
    starts_on = deal["contract_signed_date"].isoformat()
    project = {"name": deal["deal_name"] or f"Deal {deal_id}", "code": code,
               "crm_deal_id": deal_id, "crm_company_id": deal["company_id"],
               "billing_type": deal["billing_type"], "starts_on": starts_on, "ends_on": None,
               "fee": _money(deal["amount"]) if deal["billing_type"] == "fixed_fee" else None,
               "currency": deal["currency"], "region": deal["region"]}
    job = {"entityId": code, "companyName": deal["company_name"] or project["name"],
           "customer": {"id": deal["erp_customer_id"]}, "status": "active",
           "externalId": None, "startDate": starts_on,
           "subsidiary": {"id": {"NA": "1", "EMEA": "2", "APAC": "3"}[deal["region"]]}}
    link = {"properties": {"psa_project_id": None}}
    steps = [
        (project_key, "psa_project", "psa", 1, None, project,
         f"create PSA project {code} for deal {deal_id} ({deal['deal_name']})"),
        (f"erp.job:{code}", "erp_job", "erp", 2, project_key, job,
         f"create ERP job {code} for the new PSA project of deal {deal_id}"),
        (f"crm.deal_link:{deal_id}", "crm_deal_link", "crm", 3, f"erp.job:{code}", link,
         f"set psa_project_id on CRM deal {deal_id}"),
    ]
    with conn.transaction():
        for key, kind, system, step, depends_on, payload, description in steps:
            conn.execute(
                """INSERT INTO ops.outbox (idempotency_key, kind, purpose, system, step,
                          depends_on, deal_id, project_code, record_key, payload, currency,
                          description, status, decided_by, decided_at, planned_by_run)
                   VALUES (%s, %s, 'deal_setup', %s, %s, %s, %s, %s, %s, %s, %s, %s, 'pending',
                           'auto: deal-to-project set-up needs no approval', now(), %s)
                   ON CONFLICT (idempotency_key) DO NOTHING""",
                (key, kind, system, step, depends_on, deal_id, code, deal_id, Jsonb(payload),
                 deal["currency"], description, dag_run_id))


# -- corrections ----------------------------------------------------------------------

def plan_corrections(conn, plan: Plan, dag_run_id: str | None) -> None:
    found = _rows(conn.execute(read_sql("writeback/corrections.sql"), {"as_of": plan.as_of}))
    existing = {r[0] for r in conn.execute("SELECT idempotency_key FROM ops.outbox")}
    seen: set[str] = set()
    new = []
    for c in found:
        if c["idempotency_key"] in existing or c["idempotency_key"] in seen:
            continue
        seen.add(c["idempotency_key"])
        if not c["feasible"]:
            plan.infeasible_corrections.append(_correction_brief(c, "no ERP customer / job"))
            continue
        new.append(c)
    worth_by_project: dict[str, Decimal] = defaultdict(Decimal)
    for c in new:
        worth_by_project[c["project_code"]] += Decimal(c["worth"])
    threshold = approval_threshold()
    held_projects = {p for p, worth in worth_by_project.items() if worth > threshold}
    if not new:
        return
    new.sort(key=lambda c: (c["project_code"], KIND_ORDER[c["kind"]], c["record_key"]))
    batch_id = None
    if held_projects:
        batch_id = (f"corr-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(2)}")
    with conn.transaction():
        for c in new:
            held = c["project_code"] in held_projects
            if held:
                decided_by = None
                decision = "held_for_approval"
                log_by = (f"threshold: project worth {worth_by_project[c['project_code']]:,.2f} "
                          f"> {threshold:,.2f}")
            else:
                decided_by = (f"auto: project worth {worth_by_project[c['project_code']]:,.2f} "
                              f"<= threshold {threshold:,.2f}")
                decision, log_by = "auto_approved", decided_by
            outbox_id = conn.execute(
                """INSERT INTO ops.outbox (idempotency_key, kind, purpose, system, step,
                          depends_on, project_code, record_key, payload, worth, currency,
                          description, status, batch_id, decided_by, decided_at, planned_by_run)
                   VALUES (%s, %s, 'correction', %s, 1, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                           CASE WHEN %s THEN NULL ELSE now() END, %s)
                   ON CONFLICT (idempotency_key) DO NOTHING RETURNING id""",
                (c["idempotency_key"], c["kind"], "psa" if c["kind"].startswith("psa") else "erp",
                 c["depends_on"], c["project_code"], c["record_key"], Jsonb(c["payload"]),
                 c["worth"], c["currency"], c["description"],
                 "awaiting_approval" if held else "pending", batch_id if held else None,
                 decided_by, held, dag_run_id)).fetchone()
            if outbox_id is None:
                continue
            conn.execute(
                """INSERT INTO ops.correction_log (outbox_id, idempotency_key, project_code, kind,
                          worth, decision, decided_by, batch_id, dag_run_id)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (outbox_id[0], c["idempotency_key"], c["project_code"], c["kind"], c["worth"],
                 decision, log_by, batch_id if held else None, dag_run_id))
            (plan.held_corrections if held else plan.auto_corrections).append(
                _correction_brief(c))
        if batch_id:
            total = sum((worth_by_project[p] for p in held_projects), Decimal(0))
            count = sum(1 for c in new if c["project_code"] in held_projects)
            conn.execute(
                """INSERT INTO ops.approval_batches (batch_id, expires_at, status, total_worth,
                          corrections) VALUES (%s, now() + %s, 'awaiting_approval', %s, %s)""",
                (batch_id, approval_timeout(), total, count))
            plan.batch_id = batch_id


def _correction_brief(c: dict, note: str = "") -> dict:
    return {"key": c["idempotency_key"], "kind": c["kind"], "project_code": c["project_code"],
            "record_key": c["record_key"], "worth": _money(c["worth"]),
            "currency": c["currency"], "description": c["description"], "note": note}


def plan_writes(conn, writes: SourceWrites, as_of: date, dag_run_id: str | None = None) -> Plan:
    plan = Plan(as_of=as_of)
    plan.expired_batches = expire_stale_batches(conn, dag_run_id)
    plan_deal_setups(conn, writes, plan, dag_run_id)
    plan_corrections(conn, plan, dag_run_id)
    return plan
