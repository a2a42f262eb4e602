"""Fixtures for the transform tests: a clean warehouse per test and a writer that loads
source-shaped JSON payloads into raw.* under fake succeeded ingest runs."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest
from psycopg import sql
from psycopg.rows import dict_row

from psops import catalogue
from psops.connectors.paginators import path_getter
from psops.connectors.raw_loader import raw_table_ddl
from psops.db import scalar

RAW_TABLES = tuple(stream.raw_table for stream in catalogue.streams())
RESET_TABLES = (
    "ops.exceptions", "ops.quality_results", "ops.transform_runs", "ops.transform_watermarks",
    "ops.watermarks", "ops.ingest_runs", "confidential.employee_cost_rates",
    "ops.curated_pending", "ops.curated_full_sync",
)
SCHEMAS_TO_EMPTY = ("staging", "curated", "marts")


def create_raw_tables(conn) -> None:
    """The raw layout of the ingestion engine (one table per stream)."""
    for table in RAW_TABLES:
        conn.execute(raw_table_ddl(table))


def reset_warehouse(conn) -> None:
    tables = [sql.Identifier("raw", t) for t in RAW_TABLES]
    tables += [sql.Identifier(*name.split(".")) for name in RESET_TABLES]
    for schema in SCHEMAS_TO_EMPTY:
        names = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
        tables += [sql.Identifier(schema, name) for (name,) in names]
    conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(sql.SQL(", ").join(tables)))


class RawWriter:
    """Appends records to raw.* exactly as the ingestion engine would: every call to
    `load` is one succeeded stream run (snapshot streams: call once with all records)."""

    def __init__(self, conn):
        self.conn = conn
        self.run_counter = 0

    def start_run(self, table: str, status: str = "succeeded", dag_run_id: str | None = None,
                  requests: int = 1, failed_requests: int = 0) -> int:
        stream = catalogue.stream_of_raw_table(table)
        self.run_counter += 1
        return scalar(
            self.conn,
            """INSERT INTO ops.ingest_runs (dag_id, dag_run_id, system, stream, mode, status,
                   requests, failed_requests, started_at, finished_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s,
                       now() + %s * interval '1 second',
                       CASE WHEN %s = 'running' THEN NULL
                            ELSE now() + %s * interval '1 second' END)
               RETURNING id""",
            (catalogue.ingest_dag_id(stream.system), dag_run_id or f"run_{self.run_counter}",
             stream.system, stream.name, stream.entity.load, status, requests, failed_requests,
             self.run_counter, status, self.run_counter),
        )

    def load(self, table: str, records: list[dict], status: str = "succeeded") -> int:
        run_id = self.start_run(table, status)
        self.append(table, records, run_id)
        return run_id

    def append(self, table: str, records: list[dict], run_id: int) -> None:
        stream = catalogue.stream_of_raw_table(table)
        key_of = path_getter(stream.primary_key)
        updated_of = path_getter(stream.cursor_field) if stream.cursor_field else None
        insert = sql.SQL("INSERT INTO {} (record_id, source_updated_at, payload, run_id) "
                         "VALUES (%s, %s, %s, %s)").format(sql.Identifier("raw", table))
        for record in records:
            updated = updated_of(record) if updated_of else None
            self.conn.execute(insert, (str(key_of(record)), updated, json.dumps(record), run_id))

    def finish(self, run_id: int) -> None:
        self.conn.execute(
            "UPDATE ops.ingest_runs SET status = 'succeeded', finished_at = now() + interval '1 hour' "
            "WHERE id = %s", (run_id,))


@pytest.fixture
def wh(warehouse_conn):
    """A clean, migrated warehouse (raw tables included); autocommit connection."""
    create_raw_tables(warehouse_conn)
    reset_warehouse(warehouse_conn)
    return warehouse_conn


@pytest.fixture
def raw(wh):
    return RawWriter(wh)


# --------------------------------------------------------------------------
# Payload builders: shaped exactly like the source APIs (docs/source-apis.md)
# --------------------------------------------------------------------------

T0 = "2026-01-05T09:00:00Z"


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def user(email: str, uid: int = 1) -> dict:
    return {"id": uid, "name": email.split("@")[0], "email": email}


def hris_employee(eid, email, hire="2024-01-01", term="0000-00-00", hours="40", target="75",
                  cost="50", status="Active") -> dict:
    return {"id": str(eid), "displayName": f"Employee {eid}", "workEmail": email,
            "jobTitle": "Consultant", "department": "Delivery", "location": "Remote",
            "status": status, "hireDate": hire, "terminationDate": term,
            "customStandardHoursPerWeek": hours, "customCostRate": cost,
            "customTargetUtilization": target}


def time_off_request(rid, employee_id, dates: dict, unit="days", status="approved") -> dict:
    days = sorted(dates)
    return {"id": str(rid), "employeeId": str(employee_id),
            "status": {"status": status, "lastChanged": "2026-01-01"},
            "start": days[0], "end": days[-1], "type": {"id": "1", "name": "Vacation"},
            "amount": {"unit": unit, "amount": str(sum(float(v) for v in dates.values()))},
            "dates": {k: str(v) for k, v in dates.items()}}


def holiday(hid, start, end=None, name="Holiday") -> dict:
    return {"id": int(hid), "type": "holiday", "name": name, "start": start, "end": end or start}


def psa_project(pid, code, billing_type="time_and_materials", status="active", deal_id=None,
                currency="USD", created_at="2026-01-05T09:00:00Z", updated_at=T0) -> dict:
    return {"id": pid, "code": code, "name": f"Project {code}", "crm_deal_id": deal_id,
            "crm_company_id": "501", "billing_type": billing_type, "status": status,
            "starts_on": "2025-01-01", "ends_on": "2026-12-31", "budget_hours": 1000,
            "fee": 100000.0 if billing_type == "fixed_fee" else None, "currency": currency,
            "region": "NA", "project_manager": {"id": 9, "name": "PM", "email": "pm@example.com"},
            "created_at": created_at, "updated_at": updated_at}


def milestone(mid, project_id, code, amount, due_on, status="accepted", accepted_at=None,
              evidence=True, updated_at=T0) -> dict:
    return {"id": mid, "project": {"id": project_id, "code": code}, "name": f"M{mid}",
            "amount": amount, "due_on": due_on, "status": status,
            "completed_at": accepted_at, "accepted_at": accepted_at,
            "evidence": ([{"document_id": f"d{mid}", "name": "signoff.pdf",
                           "uploaded_at": "2026-01-01T00:00:00Z"}] if evidence else []),
            "created_at": T0, "updated_at": updated_at}


def time_entry(teid, spent_date, hours, email, project_id=1, code="PRJ-00001", status="approved",
               billable=True, rate=100.0, role="Consultant", submitted_at=None, approved_at=None,
               updated_at=T0) -> dict:
    if status in ("submitted", "approved") and submitted_at is None and approved_at is None:
        submitted_at = f"{spent_date}T18:00:00Z"
    return {"id": teid, "spent_date": spent_date, "hours": hours, "billable": billable,
            "billable_rate": rate, "role": role, "user": user(email),
            "project": {"id": project_id, "code": code, "name": f"Project {code}"},
            "task": {"id": 1, "name": "Delivery"}, "notes": "", "status": status,
            "submitted_at": submitted_at, "approved_at": approved_at, "is_billed": False,
            "created_at": T0, "updated_at": updated_at}


def expense(xid, spent_date, total_cost, email, project_id=1, code="PRJ-00001", status="approved",
            billable=True, receipt=True, updated_at=T0) -> dict:
    return {"id": xid, "spent_date": spent_date, "total_cost": total_cost, "billable": billable,
            "expense_category": {"id": 1, "name": "Travel"},
            "receipt": {"url": f"https://files/{xid}", "file_name": f"{xid}.pdf"} if receipt else None,
            "status": status, "user": user(email),
            "project": {"id": project_id, "code": code, "name": f"Project {code}"},
            "created_at": T0, "updated_at": updated_at}


def change_request(cid, project_id, code, status="pending", requested_at="2026-01-05T10:00:00Z",
                   decided_at=None, updated_at=T0) -> dict:
    return {"id": cid, "project": {"id": project_id, "code": code}, "title": f"CR {cid}",
            "amount_delta": 1000.0, "status": status, "requested_at": requested_at,
            "decided_at": decided_at, "created_at": T0, "updated_at": updated_at}


def crm_deal(did, stage="closedwon", closedate="2026-01-01T12:00:00Z", signed="2026-01-02",
             modified="2026-01-05T09:00:00Z") -> dict:
    return {"id": str(did), "properties": {
        "dealname": f"Deal {did}", "amount": "50000.00", "deal_currency_code": "USD",
        "dealstage": stage, "closedate": closedate, "company_id": "501",
        "billing_type": "fixed_fee", "region": "NA", "service_line": "Advisory",
        "contract_signed_date": signed, "sow_reference": f"SOW-{did}", "psa_project_id": None,
        "hs_lastmodifieddate": modified, "hs_object_id": str(did)},
        "createdAt": "2025-12-01T00:00:00Z", "updatedAt": modified, "archived": False}


def erp_job(jid, code, status="active", psa_project_id=None, modified="2026-01-05T09:00:00Z") -> dict:
    return {"id": str(jid), "entityId": code, "companyName": "Acme", "customer": {"id": "7", "refName": "Acme"},
            "status": status, "externalId": str(psa_project_id) if psa_project_id else None,
            "startDate": "2025-01-01", "subsidiary": {"id": "1", "refName": "NA"},
            "lastModifiedDate": modified}


def billing_line(lid, job_id, code, milestone_id, amount, modified="2026-01-05T09:00:00Z") -> dict:
    return {"id": str(lid), "job": {"id": str(job_id), "refName": code},
            "externalId": str(milestone_id), "amount": amount, "billDate": "2026-01-31",
            "lastModifiedDate": modified}


def rate_card(rid, role, rate, effective_from="2025-01-01", effective_to=None, currency="USD",
              modified="2026-01-05T09:00:00Z") -> dict:
    return {"id": str(rid), "role": role, "currency": currency, "rate": rate,
            "effectiveFrom": effective_from, "effectiveTo": effective_to,
            "lastModifiedDate": modified}


def invoice(iid, job_id, code, tran_date, amount, status="open", milestone_id=None,
            period_start=None, period_end=None, modified="2026-01-05T09:00:00Z") -> dict:
    return {"id": str(iid), "tranId": f"INV-{iid}", "job": {"id": str(job_id), "refName": code},
            "tranDate": tran_date, "amount": amount, "status": status,
            "milestoneExternalId": str(milestone_id) if milestone_id else None,
            "periodStart": period_start, "periodEnd": period_end, "lastModifiedDate": modified}


def purchase_order(poid, job_id, code, status="approved", modified="2026-01-05T09:00:00Z") -> dict:
    return {"id": str(poid), "tranId": f"PO-{poid}", "job": {"id": str(job_id), "refName": code},
            "vendor": {"id": "v1", "refName": "Subco"}, "amount": 5000.0, "status": status,
            "lastModifiedDate": modified}


AS_OF = date(2026, 3, 4)  # a Wednesday; its ISO week starts Monday 2026-03-02


def load_hris(raw: RawWriter, employees, time_off=(), holidays=()) -> None:
    """One complete HRIS snapshot (all three streams)."""
    raw.load("hris_employees", list(employees))
    raw.load("hris_time_off_requests", list(time_off))
    raw.load("hris_whos_out", list(holidays))


def rows(conn, query: str, *params) -> list[tuple]:
    return conn.execute(query, params).fetchall()


def records(conn, query: str, *params) -> list[dict]:
    """The rows as dicts, by column name."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def value(conn, query: str, *params):
    return scalar(conn, query, params)
