"""The outbox: every intended write, sent exactly once.

A row is planned once (its idempotency key is unique), then:

    pending --mark sent (committed)--> request --answer--> confirmed
                                          |
                                          +-- no answer / 5xx --> look it up --> found: confirmed (adopted)
                                          |                                  --> absent: failed
                                          +-- 4xx --> failed (response body kept)

A create is ALWAYS preceded by a lookup with the contract's keys (PSA
`GET /v2/projects?crm_deal_id=…`, ERP `…/{recordType}/eid:{externalId}`), so a
row left `sent` by a crash, a `failed` row retried next run, or a record
someone made since the last ingest is adopted, never created twice. A PATCH
whose answer was lost is confirmed by reading the record back.

One applier at a time (a session advisory lock): the write-back and approval
DAGs may run at once, their writes never interleave.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from airflow.sdk.exceptions import AirflowFailException

from psops.connectors.source_api_hook import SourceApiError
from psops.writeback.source_writes import Found, SourceWrites

log = logging.getLogger(__name__)

OUTBOX_LOCK_KEY = 7_314_159_301
KIND_ORDER = {"psa_project": 1, "erp_job": 2, "crm_deal_link": 3, "erp_billing_line": 4,
              "psa_time_entry_rate": 5}
SENDABLE = ("pending", "sent", "failed")


class WriteFailed(Exception):
    """The system refused the write or gave no answer, and the lookup found nothing."""


@dataclass
class ApplyReport:
    confirmed: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    waiting: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"confirmed": self.confirmed, "failed": self.failed, "waiting": self.waiting}


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


def confirmed_since(conn, since, *, purpose: str | None = None,
                    batch_id: str | None = None) -> list[dict]:
    """The rows (of one purpose / batch) confirmed at or after `since`, as in
    ApplyReport.confirmed: what the earlier tries of a retried task wrote."""
    cur = conn.execute(
        """SELECT * FROM ops.outbox
           WHERE status = 'confirmed' AND confirmed_at >= %s
             AND (%s::text IS NULL OR purpose = %s)
             AND (%s::text IS NULL OR batch_id = %s)
           ORDER BY confirmed_at, id""",
        (since, purpose, purpose, batch_id, batch_id))
    names = [d.name for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return [{**_brief(row, "adopted" if row["adopted"] else ""), "remote_id": row["remote_id"]}
            for row in rows]


def _sendable_rows(conn, purpose, batch_id) -> list[dict]:
    cur = conn.execute(
        """SELECT * FROM ops.outbox
           WHERE status = ANY(%s)
             AND (%s::text IS NULL OR purpose = %s)
             AND (%s::text IS NULL OR batch_id = %s)""",
        (list(SENDABLE), purpose, purpose, batch_id, batch_id))
    names = [d.name for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return sorted(rows, key=lambda r: (r["purpose"] != "deal_setup", r["deal_id"] or "",
                                       r["step"], KIND_ORDER[r["kind"]], r["id"]))


def _dependency(conn, row) -> dict | None:
    if not row["depends_on"]:
        return None
    found = conn.execute(
        "SELECT status, remote_id, kind, payload FROM ops.outbox WHERE idempotency_key = %s",
        (row["depends_on"],)).fetchone()
    if not found:
        return None
    return {"status": found[0], "remote_id": found[1], "kind": found[2], "payload": found[3]}


def _brief(row: dict, note: str = "") -> dict:
    return {"key": row["idempotency_key"], "kind": row["kind"], "system": row["system"],
            "project_code": row["project_code"], "deal_id": row["deal_id"],
            "description": row["description"], "worth": float(row["worth"] or 0),
            "currency": row["currency"], "remote_id": row.get("remote_id"), "note": note}


def _resolved_payload(row: dict, dependency: dict | None) -> dict:
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


def _send_one(conn, writes: SourceWrites, row: dict, dependency: dict | None,
              report: ApplyReport) -> None:
    payload = _resolved_payload(row, dependency)
    with conn.transaction():
        conn.execute(
            """UPDATE ops.outbox SET status = 'sent', attempts = attempts + 1, payload = %s,
                      sent_at = now(), updated_at = now() WHERE id = %s""",
            (json.dumps(payload), row["id"]))
    try:
        found, adopted = _execute(writes, row["kind"], row, payload)
    except (WriteFailed, SourceApiError, AirflowFailException) as err:
        body = str(err)[:4000]
        with conn.transaction():
            conn.execute(
                """UPDATE ops.outbox SET status = 'failed', response_body = %s,
                          response_status = %s, updated_at = now() WHERE id = %s""",
                (body, _status_in(body), row["id"]))
        log.warning("outbox %s: FAILED: %s", row["idempotency_key"], body)
        report.failed.append(_brief(row, body))
        return
    with conn.transaction():
        conn.execute(
            """UPDATE ops.outbox SET status = 'confirmed', remote_id = %s, adopted = %s,
                      response_body = %s, response_status = NULL, confirmed_at = now(),
                      updated_at = now() WHERE id = %s""",
            (found.remote_id, adopted, json.dumps(found.record)[:4000], row["id"]))
    log.info("outbox %s: confirmed (%s %s)%s", row["idempotency_key"], row["system"].upper(),
             found.remote_id, " - adopted after lookup" if adopted else "")
    report.confirmed.append({**_brief(row, "adopted" if adopted else ""),
                             "remote_id": found.remote_id})


def _status_in(message: str) -> int | None:
    for token in message.replace(":", " ").split():
        if token.isdigit() and len(token) == 3 and token[0] in "45":
            return int(token)
    return None


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


def _execute(writes: SourceWrites, kind: str, row: dict, payload: dict) -> tuple[Found, bool]:
    if kind == "psa_project":
        deal_id = row["deal_id"]
        return _create_once(lambda: writes.find_project_by_deal(deal_id),
                            lambda: writes.create_project(payload))
    if kind in ("erp_job", "erp_billing_line"):
        record_type = "job" if kind == "erp_job" else "billingMilestone"
        external_id = str(payload["externalId"])
        found, adopted = _create_once(lambda: writes.find_erp(record_type, external_id),
                                      lambda: writes.create_erp(record_type, payload))
        if not found.remote_id:  # 204 without a Location: read the id back
            found = writes.find_erp(record_type, external_id) or found
        return found, adopted
    if kind == "crm_deal_link":
        deal_id = row["deal_id"]
        properties = payload["properties"]
        try:
            record = writes.patch_deal(deal_id, properties)
            return Found(deal_id, {"properties": {k: record.get("properties", {}).get(k)
                                                  for k in properties}}), False
        except SourceApiError as err:
            current = writes.get_deal(deal_id, list(properties)).get("properties", {})
            if all(str(current.get(k)) == str(v) for k, v in properties.items()):
                return Found(deal_id, {"properties": properties}), True
            raise WriteFailed(f"{err}; read-back shows {current}") from None
    if kind == "psa_time_entry_rate":
        entry_id = row["record_key"]
        try:
            record = writes.patch_time_entry(entry_id, payload)
            return Found(entry_id, {k: record.get(k) for k in payload}), False
        except SourceApiError as err:
            current = writes.get_time_entry(entry_id)
            if all(_same(current.get(k), v) for k, v in payload.items()):
                return Found(entry_id, {k: current.get(k) for k in payload}), True
            raise WriteFailed(f"{err}; read-back shows "
                              f"{ {k: current.get(k) for k in payload} }") from None
    raise AirflowFailException(f"outbox: unknown kind {kind!r}")


def _same(a, b) -> bool:
    try:
        return abs(float(a) - float(b)) <= 0.005
    except (TypeError, ValueError):
        return a == b
