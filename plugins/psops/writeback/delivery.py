"""How each kind of outbox write reaches its system exactly once.

A create is ALWAYS preceded by a lookup with the contract's keys (PSA
`GET /v2/projects?crm_deal_id=…`, ERP `…/{recordType}/eid:{externalId}`), so a row
left `sent` by a crash, a `failed` row retried next run, or a record someone made
since the last ingest is adopted, never created twice. A PATCH whose answer was lost
is confirmed by reading the record back.
"""

from __future__ import annotations

import logging

from airflow.sdk.exceptions import AirflowFailException

from psops.connectors.source_api_hook import SourceApiError
from psops.writeback.source_writes import Found, SourceWrites

log = logging.getLogger(__name__)

RATE_TOLERANCE = 0.005


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
    if kind in ("erp_job", "erp_billing_line"):
        return _create_erp(writes, "job" if kind == "erp_job" else "billingMilestone", payload)
    if kind == "crm_deal_link":
        return _link_deal(writes, row["deal_id"], payload["properties"])
    if kind == "psa_time_entry_rate":
        return _fix_rate(writes, row["record_key"], payload)
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


def _link_deal(writes: SourceWrites, deal_id: str, properties: dict) -> tuple[Found, bool]:
    try:
        record = writes.patch_deal(deal_id, properties)
        return Found(deal_id, {"properties": {name: record.get("properties", {}).get(name)
                                              for name in properties}}), False
    except SourceApiError as err:
        current = writes.get_deal(deal_id, list(properties)).get("properties", {})
        if all(str(current.get(name)) == str(value) for name, value in properties.items()):
            return Found(deal_id, {"properties": properties}), True
        raise WriteFailed(f"{err}; read-back shows {current}") from None


def _fix_rate(writes: SourceWrites, entry_id: str, payload: dict) -> tuple[Found, bool]:
    try:
        record = writes.patch_time_entry(entry_id, payload)
        return Found(entry_id, {name: record.get(name) for name in payload}), False
    except SourceApiError as err:
        current = writes.get_time_entry(entry_id)
        read_back = {name: current.get(name) for name in payload}
        if all(_same_value(read_back[name], value) for name, value in payload.items()):
            return Found(entry_id, read_back), True
        raise WriteFailed(f"{err}; read-back shows {read_back}") from None


def _same_value(current, intended) -> bool:
    try:
        return abs(float(current) - float(intended)) <= RATE_TOLERANCE
    except (TypeError, ValueError):
        return current == intended
