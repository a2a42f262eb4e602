"""Planning: what the source systems should be told, written to the outbox once.

* Deal-to-project set-up: each valid candidate deal gets three outbox rows, in
  order: PSA project (step 1), ERP job (step 2, needs the PSA id), CRM deal link
  (step 3, after the job; carries the PSA id). An invalid one goes to the exception
  queue (rule `deal.setup_invalid`, a warning: the deal stays in the marts) and the alert.
  A new code is one more than the highest the PSA ever returned (raw, quarantined
  projects included) or the outbox named. A set-up step whose key the outbox already
  holds for something else is never skipped: the deal's set-up is not planned and it is
  invalid with SETUP_KEY_CONFLICT (the key and its holder in the details).
* Corrections (include/sql/writeback/corrections.sql): the run's new ones are handed
  to the approval lifecycle (psops.writeback.approval), which holds the large ones for
  finance and approves the others.
* Expiry: stale approval batches are expired first (psops.writeback.approval).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date

from psycopg import sql
from psycopg.rows import dict_row, scalar_row

from psops import catalogue, exception_queue
from psops.exception_queue import ExceptionRule
from psops.transform.sql_files import read_sql
from psops.writeback import approval, outbox
from psops.writeback.outbox import KIND_ORDER, PlannedWrite
from psops.writeback.source_writes import SourceWrites

DEAL_RULE = ExceptionRule("deal.setup_invalid", "warning", "crm", "deal")
PROJECT_CODE = re.compile(r"^PRJ-(\d{5})$")
SETUP_DECIDED_BY = "auto: deal-to-project set-up needs no approval"
KEY_CONFLICT = "SETUP_KEY_CONFLICT"

log = logging.getLogger(__name__)


class SetupKeyConflict(Exception):
    """A set-up step's idempotency key is already in the outbox for another write."""


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


def _amount(value) -> float:
    """A money value as a JSON number."""
    return float(value or 0)


def _query(conn, statement, params=None) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(statement, params).fetchall()


def _values(conn, statement, params=None) -> list:
    with conn.cursor(row_factory=scalar_row) as cur:
        return cur.execute(statement, params).fetchall()


def plan_writes(conn, writes: SourceWrites, as_of: date, dag_run_id: str | None = None) -> Plan:
    plan = Plan(as_of=as_of)
    plan.expired_batches = approval.expire_stale(conn, dag_run_id)
    plan_deal_setups(conn, writes, plan, dag_run_id)
    plan_corrections(conn, plan, dag_run_id)
    return plan


# -- deal-to-project set-up -----------------------------------------------------------

def plan_deal_setups(conn, writes: SourceWrites, plan: Plan, dag_run_id: str | None) -> None:
    candidates = _query(conn, read_sql("writeback/deal_setup_candidates.sql"))
    planned = set(_values(conn, "SELECT deal_id FROM ops.outbox WHERE kind = 'psa_project'"))
    valid = [deal for deal in candidates
             if not deal["reasons"] and deal["deal_id"] not in planned]
    conflicts = _plan_setups(conn, writes, plan, valid, dag_run_id) if valid else []
    invalid = [deal for deal in candidates if deal["reasons"]] + conflicts
    exception_queue.sync_rule(conn, DEAL_RULE, {deal["deal_id"]: _invalid_details(deal)
                                                for deal in invalid}, plan.as_of,
                              checked_by=f"psops_writeback (run {dag_run_id})")
    plan.invalid_deals = [{"deal_id": deal["deal_id"], "deal_name": deal["deal_name"],
                           "reasons": deal["reasons"], "amount": _amount(deal["amount"]),
                           "currency": deal["currency"]} for deal in invalid]


def _plan_setups(conn, writes: SourceWrites, plan: Plan, deals: list[dict],
                 dag_run_id: str | None) -> list[dict]:
    """Each deal's three set-up rows, all or none; the deals that could not be planned
    (a key conflict), with their reason."""
    conflicts = []
    next_number = _highest_code_number(conn, writes) + 1
    for deal in deals:
        code = f"PRJ-{next_number:05d}"
        try:
            with conn.transaction():
                for write in _setup_writes(deal, code):
                    if outbox.add(conn, write, dag_run_id, decided_by=SETUP_DECIDED_BY) is None:
                        raise SetupKeyConflict(_conflict_text(conn, deal["deal_id"], write))
        except SetupKeyConflict as conflict:
            log.error("deal %s NOT set up: %s", deal["deal_id"], conflict)
            conflicts.append({**deal, "reasons": [KEY_CONFLICT], "conflict": str(conflict)})
            continue
        next_number += 1
        plan.new_setups.append({"deal_id": deal["deal_id"], "deal_name": deal["deal_name"],
                                "project_code": code, "billing_type": deal["billing_type"],
                                "amount": _amount(deal["amount"]), "currency": deal["currency"]})
    return conflicts


def _conflict_text(conn, deal_id: str, write: PlannedWrite) -> str:
    (holder,) = _query(conn, """SELECT purpose, deal_id, project_code, record_key, status
                                FROM ops.outbox WHERE idempotency_key = %s""",
                       (write.idempotency_key,))
    return (f"the outbox already holds {write.idempotency_key} ({holder['purpose']}, deal "
            f"{holder['deal_id'] or '-'}, project {holder['project_code'] or '-'}, record "
            f"{holder['record_key'] or '-'}, {holder['status']}): the {write.kind} step of deal "
            f"{deal_id} would follow another write")


def _invalid_details(deal: dict) -> dict:
    details = {"reasons": deal["reasons"], "deal_name": deal["deal_name"],
               "company_id": deal["company_id"], "amount": _amount(deal["amount"]),
               "billing_type": deal["billing_type"], "region": deal["region"]}
    if deal.get("conflict"):
        details["conflict"] = deal["conflict"]
    return details


def _highest_code_number(conn, writes: SourceWrites) -> int:
    """The highest project code the PSA has: every code the PSA ever returned (every
    version in raw, quarantined projects too), every code this outbox gave out or named,
    and the codes of the PSA's projects changed since the ingest's watermark (minus its
    overlap, as the ingest asks). Not max(source_updated_at): a project dated in the
    future would put "since" past every newer project."""
    known = _values(conn, """SELECT payload->>'code' FROM ops.outbox WHERE kind = 'psa_project'
                             UNION SELECT project_code FROM ops.outbox""")
    stream = catalogue.system("psa").stream("projects")
    if _values(conn, "SELECT to_regclass(%s)", (f"raw.{stream.raw_table}",))[0] is not None:
        table = sql.Identifier("raw", stream.raw_table)
        known += _values(conn, sql.SQL("SELECT DISTINCT payload->>'code' FROM {}").format(table))
    watermark = _values(conn, "SELECT watermark - make_interval(mins => %s) FROM ops.watermarks "
                              "WHERE system = 'psa' AND stream = %s",
                        (stream.overlap_minutes, stream.name))
    since = watermark[0] if watermark else None
    known += writes.project_codes_updated_since(
        since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if since else None)
    numbers = [int(match.group(1)) for code in known
               if code and (match := PROJECT_CODE.match(code))]
    return max(numbers, default=0)


def _setup_writes(deal: dict, code: str) -> list[PlannedWrite]:
    deal_id = deal["deal_id"]
    project_key = f"psa.project:deal:{deal_id}"
    starts_on = deal["contract_signed_date"].isoformat()
    project = {"name": deal["deal_name"] or f"Deal {deal_id}", "code": code,
               "crm_deal_id": deal_id, "crm_company_id": deal["company_id"],
               "billing_type": deal["billing_type"], "starts_on": starts_on, "ends_on": None,
               "fee": _amount(deal["amount"]) if deal["billing_type"] == "fixed_fee" else None,
               "currency": deal["currency"], "region": deal["region"]}
    job = {"entityId": code, "companyName": deal["company_name"] or project["name"],
           "customer": {"id": deal["erp_customer_id"]}, "status": "active",
           "externalId": None, "startDate": starts_on,
           "subsidiary": {"id": deal["erp_subsidiary_id"]}}
    link = {"properties": {"psa_project_id": None}}
    common = {"purpose": "deal_setup", "deal_id": deal_id, "project_code": code,
              "record_key": deal_id, "currency": deal["currency"]}
    return [
        PlannedWrite(project_key, "psa_project", system="psa", step=1, payload=project,
                     description=f"create PSA project {code} for deal {deal_id} "
                                 f"({deal['deal_name']})", **common),
        PlannedWrite(f"erp.job:{code}", "erp_job", system="erp", step=2,
                     depends_on=project_key, payload=job,
                     description=f"create ERP job {code} for the new PSA project of deal "
                                 f"{deal_id}", **common),
        PlannedWrite(f"crm.deal_link:{deal_id}", "crm_deal_link", system="crm", step=3,
                     depends_on=f"erp.job:{code}", payload=link,
                     description=f"set psa_project_id on CRM deal {deal_id}", **common),
    ]


# -- corrections ----------------------------------------------------------------------

def plan_corrections(conn, plan: Plan, dag_run_id: str | None) -> None:
    found = _query(conn, read_sql("writeback/corrections.sql"), {"as_of": plan.as_of})
    seen = set(_values(conn, "SELECT idempotency_key FROM ops.outbox"))
    new: list[PlannedWrite] = []
    for correction in found:
        write = _correction_write(correction)
        if write.idempotency_key in seen:
            continue
        seen.add(write.idempotency_key)
        if not correction["feasible"]:
            plan.infeasible_corrections.append(_correction_brief(write, "no ERP customer / job"))
            continue
        new.append(write)
    if not new:
        return
    ordered = sorted(new, key=lambda write: (
        write.project_code, KIND_ORDER[write.kind], write.record_key))
    submission = approval.submit(conn, ordered, dag_run_id)
    plan.auto_corrections = [_correction_brief(write) for write in submission.approved]
    plan.held_corrections = [_correction_brief(write) for write in submission.held]
    plan.batch_id = submission.batch_id


def _correction_write(correction: dict) -> PlannedWrite:
    kind = correction["kind"]
    return PlannedWrite(
        correction["idempotency_key"], kind, purpose="correction",
        system="psa" if kind.startswith("psa") else "erp", step=1,
        depends_on=correction["depends_on"], project_code=correction["project_code"],
        record_key=correction["record_key"], payload=correction["payload"],
        worth=correction["worth"], currency=correction["currency"],
        description=correction["description"])


def _correction_brief(write: PlannedWrite, note: str = "") -> dict:
    return {"key": write.idempotency_key, "kind": write.kind,
            "project_code": write.project_code, "record_key": write.record_key,
            "worth": _amount(write.worth), "currency": write.currency,
            "description": write.description, "note": note}
