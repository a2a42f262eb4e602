"""How each kind of outbox write reaches its system exactly once.

A create is ALWAYS preceded by a lookup with the contract's keys (PSA
`GET /v2/projects?crm_deal_id=…`, ERP `…/{recordType}/eid:{externalId}`), so a row
left `sent` by a crash, a `failed` row retried next run, or a record someone made
since the last ingest is adopted, never created twice. A PATCH whose answer was lost
is confirmed by reading the record back.

A set-up step never takes over what belongs to another deal: the ERP job gets the code
of the PSA project it follows (an adopted project keeps its own code), and a CRM deal
already linked to another PSA project, or a link that would name a project made for
another deal, fails with the reason instead of being written.

A rate fix is planned from a version of the time entry (`if_unchanged` in its payload:
its rate and update time then). The entry is read again right before the PATCH, and
`skip_reason` says why the fix must not be sent to it as it is now: it was invoiced,
its rate was corrected by hand, or it changed since the plan. The write-back marks such
rows `skipped` before sending (psops.writeback.steps); a changed entry is planned again
from its new version by the next plan.
"""

from __future__ import annotations

import logging
from datetime import datetime

from airflow.sdk.exceptions import AirflowFailException

from psops.connectors.source_api_hook import SourceApiError
from psops.writeback.source_writes import Found, SourceWrites

log = logging.getLogger(__name__)

RATE_TOLERANCE = 0.005
PRECONDITION = "if_unchanged"  # in a rate fix's payload; not sent


class WriteFailed(Exception):
    """The system refused the write or gave no answer, and the lookup found nothing."""


def resolved_payload(row: dict, dependency: dict | None) -> dict:
    """The row's payload with the id of the write it depends on filled in."""
    payload = dict(row["payload"])
    if dependency is None:
        return payload
    parent_id = dependency["remote_id"]
    if row["kind"] == "erp_job":
        payload["externalId"] = parent_id
    elif row["kind"] == "erp_billing_line":
        payload["job"] = {"id": parent_id}
    elif row["kind"] == "crm_deal_link":  # after the ERP job, which carries the PSA id
        psa_id = (dependency["payload"] or {}).get("externalId") \
            if dependency["kind"] == "erp_job" else parent_id
        payload["properties"] = {**payload.get("properties", {}), "psa_project_id": psa_id}
    return payload


def deliver(writes: SourceWrites, row: dict, payload: dict) -> tuple[Found, bool]:
    """Make the write of one outbox row; returns what the system holds now and whether
    it was adopted (found after a lost answer or made earlier) rather than written now."""
    kind = row["kind"]
    if kind == "psa_project":
        deal_id = row["deal_id"]
        return _create_once(lambda: writes.find_project_by_deal(deal_id),
                            lambda: writes.create_project(payload))
    if kind == "erp_job" and row["purpose"] == "deal_setup":
        return _create_erp(writes, "job", _with_project_code(writes, payload))
    if kind in ("erp_job", "erp_billing_line"):
        return _create_erp(writes, "job" if kind == "erp_job" else "billingMilestone", payload)
    if kind == "crm_deal_link":
        return _link_deal(writes, row["deal_id"], payload["properties"])
    if kind == "psa_time_entry_rate":
        return _fix_rate(writes, row, payload)
    raise AirflowFailException(f"outbox: unknown kind {kind!r}")


def _create_once(lookup, create) -> tuple[Found, bool]:
    """Look up; create only when absent; after a lost answer, look up again and adopt."""
    existing = lookup()
    if existing is not None:
        return existing, True
    try:
        return create(), False
    except SourceApiError as err:  # 5xx or no answer: the create may have happened
        existing = lookup()
        if existing is not None:
            log.info("create answer lost (%s); the record exists: adopting it", err)
            return existing, True
        raise WriteFailed(f"{err}; lookup afterwards found no record") from None


def _create_erp(writes: SourceWrites, record_type: str, payload: dict) -> tuple[Found, bool]:
    external_id = str(payload["externalId"])
    found, adopted = _create_once(lambda: writes.find_erp(record_type, external_id),
                                  lambda: writes.create_erp(record_type, payload))
    if not found.remote_id:  # 204 without a Location: read the id back
        found = writes.find_erp(record_type, external_id) or found
    return found, adopted


def _with_project_code(writes: SourceWrites, job: dict) -> dict:
    """The set-up's ERP job with the code the PSA project has: a project adopted from the
    PSA (made for the deal before this set-up sent its own) keeps its code."""
    code = writes.get_project(str(job["externalId"])).get("code")
    if code and code != job["entityId"]:
        log.warning("PSA project %s has the code %s (planned %s): the ERP job takes %s",
                    job["externalId"], code, job["entityId"], code)
        return {**job, "entityId": code}
    return job


def _link_deal(writes: SourceWrites, deal_id: str, properties: dict) -> tuple[Found, bool]:
    psa_id = str(properties["psa_project_id"])
    linked = writes.get_deal(deal_id, list(properties)).get("properties", {}).get("psa_project_id")
    if linked and str(linked) != psa_id:
        raise WriteFailed(f"key conflict: CRM deal {deal_id} already links PSA project {linked}, "
                          f"not {psa_id}; left as it is")
    project = writes.find_project_by_deal(deal_id)
    if project is None or project.remote_id != psa_id:
        raise WriteFailed(f"key conflict: PSA project {psa_id} was not made for CRM deal {deal_id} "
                          f"(its project: {project.remote_id if project else 'none'}); not linked")
    if linked:
        return Found(deal_id, {"properties": properties}), True
    try:
        record = writes.patch_deal(deal_id, properties)
        return Found(deal_id, {"properties": {name: record.get("properties", {}).get(name)
                                              for name in properties}}), False
    except SourceApiError as err:
        current = writes.get_deal(deal_id, list(properties)).get("properties", {})
        if all(str(current.get(name)) == str(value) for name, value in properties.items()):
            return Found(deal_id, {"properties": properties}), True
        raise WriteFailed(f"{err}; read-back shows {current}") from None


def _fix_rate(writes: SourceWrites, row: dict, payload: dict) -> tuple[Found, bool]:
    """Read the entry, then PATCH only when the plan still holds; an entry already at the
    rate after an earlier send (answer lost, crash) is adopted, not patched again."""
    entry_id = row["record_key"]
    changes = {name: value for name, value in payload.items() if name != PRECONDITION}
    current = writes.find_time_entry(entry_id)
    reason = skip_reason(row, current)
    if reason:  # it changed since the check before sending: the next run skips it
        raise WriteFailed(f"not sent: {reason}")
    if _holds(current, changes):
        return Found(entry_id, _read_back(current, changes)), True
    try:
        record = writes.patch_time_entry(entry_id, changes)
        return Found(entry_id, _read_back(record, changes)), False
    except SourceApiError as err:
        read_back = _read_back(writes.get_time_entry(entry_id), changes)
        if _holds(read_back, changes):
            return Found(entry_id, read_back), True
        raise WriteFailed(f"{err}; read-back shows {read_back}") from None


def reason_to_skip(writes: SourceWrites, row: dict) -> str | None:
    """The check before sending an outbox row: for a rate fix, the time entry read from
    the PSA now, judged by `skip_reason`. An entry that cannot be read now is not judged
    here: the send reads it again and fails if it still cannot."""
    if row["kind"] != "psa_time_entry_rate":
        return None
    try:
        current = writes.find_time_entry(row["record_key"])
    except SourceApiError as err:
        log.warning("outbox %s: could not re-read the time entry (%s)", row["idempotency_key"], err)
        return None
    return skip_reason(row, current)


def skip_reason(row: dict, current: dict | None) -> str | None:
    """Why a planned rate fix must not be sent to the time entry as the PSA holds it now
    (`current`; None: gone), or None to send it."""
    payload = row["payload"]
    changes = {name: value for name, value in payload.items() if name != PRECONDITION}
    if current is None:
        return f"time entry {row['record_key']} is no longer in the PSA"
    if _holds(current, changes):  # after an earlier send it is ours: adopted by the send
        return None if row["attempts"] else (
            f"rate already {current.get('billable_rate')}: corrected by hand")
    if current.get("is_billed"):
        return "the time entry was invoiced (is_billed) since the plan"
    planned = payload.get(PRECONDITION)
    if planned is None:  # planned before fixes carried their version
        return None
    if not _same_value(current.get("billable_rate"), planned.get("billable_rate")):
        return (f"rate corrected by hand since the plan: from {planned.get('billable_rate')} "
                f"to {current.get('billable_rate')}")
    if _moment(current.get("updated_at")) != _moment(planned.get("updated_at")):
        return (f"the time entry changed since the plan (updated_at {planned.get('updated_at')}"
                f", now {current.get('updated_at')})")
    return None


def _read_back(record: dict, changes: dict) -> dict:
    return {name: record.get(name) for name in changes}


def _holds(record: dict | None, changes: dict) -> bool:
    return record is not None and all(
        _same_value(record.get(name), value) for name, value in changes.items())


def _moment(text):
    """An update time as an instant (text that is not a time stays text)."""
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return text


def _same_value(current, intended) -> bool:
    try:
        return abs(float(current) - float(intended)) <= RATE_TOLERANCE
    except (TypeError, ValueError):
        return current == intended
