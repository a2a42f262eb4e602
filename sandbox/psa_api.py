"""PSA API (Harvest style): page/per_page lists with absolute links, writes."""

from __future__ import annotations

import math
import re
from urllib.parse import urlencode

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from sandbox.http_json import json_body, json_response, query_int
from sandbox.isotime import iso_s, parse_time
from sandbox.middleware import SystemStyle
from sandbox.psa_anomalies import corrupt_page
from sandbox.state import SandboxState

RESOURCES = ("projects", "milestones", "assignments", "time_entries", "expenses",
             "change_requests")
PROJECT_FIELDS = ("name", "code", "crm_deal_id", "crm_company_id", "billing_type", "status",
                  "starts_on", "ends_on", "budget_hours", "fee", "currency", "region")
TIME_ENTRY_FIELDS = ("spent_date", "hours", "billable", "billable_rate", "role", "notes",
                     "status", "submitted_at", "approved_at", "is_billed")
CODE = re.compile(r"^PRJ-\d{5}$")


def error(status: int, code: str, description: str) -> Response:
    return json_response({"error": code, "error_description": description}, status)


def fault_response(status: int, retry_after: int | None) -> Response:
    if status == 429:
        response = error(429, "rate_limit_exceeded",
                         "Too many requests: 100 requests per 15 seconds per token")
        response.headers["Retry-After"] = str(retry_after or 1)
        return response
    return json_response({"status": status, "error": "Server error"}, status)


STYLE = SystemStyle(
    name="psa",
    is_write=lambda method, path: method in ("POST", "PATCH"),
    limit_key=lambda headers, path: headers.get("authorization", ""),
    fault_response=fault_response,
)


def _auth_problem(state: SandboxState, request: Request) -> Response | None:
    if not request.headers.get("user-agent"):
        return error(400, "bad_request", "A User-Agent header is required")
    creds = state.credentials
    if (request.headers.get("authorization") != f"Bearer {creds.psa_token}"
            or request.headers.get("psa-account-id") != creds.psa_account_id):
        return error(401, "invalid_token", "The access token provided is expired, revoked, "
                     "malformed or invalid for other reasons.")
    return None


def _not_found() -> Response:
    return json_response({"status": 404, "error": "Not Found"}, 404)


def _unprocessable(message: str) -> Response:
    return json_response({"message": message}, 422)


def _page_url(request: Request, page: int) -> str:
    params = dict(request.query_params)
    params["page"] = str(page)
    return str(request.url.replace(query=urlencode(params)))


def _list_params(request: Request) -> tuple[int, int, int | None]:
    page = query_int(request, "page", 1)
    per_page = query_int(request, "per_page", 100)
    if page < 1 or not 1 <= per_page <= 2000:
        raise ValueError("page must be >= 1 and per_page between 1 and 2000")
    since = request.query_params.get("updated_since")
    return page, per_page, parse_time(since) if since else None


def list_records(state: SandboxState, resource: str, request: Request) -> Response:
    try:
        page, per_page, since = _list_params(request)
    except ValueError as exc:
        return _unprocessable(str(exc))
    offset = (page - 1) * per_page
    if resource == "time_entries":
        records, total = state.data.time_entries.page(since, offset, per_page)
        records = corrupt_page(state, records, page, per_page, since)
    else:
        rows = state.data.psa[resource].slice_since(None if since is None else iso_s(since))
        deal = request.query_params.get("crm_deal_id")
        if resource == "projects" and deal:
            rows = [r for r in rows if r.get("crm_deal_id") == deal]
        records, total = rows[offset: offset + per_page], len(rows)
    pages = max(1, math.ceil(total / per_page))
    return json_response({
        resource: records, "per_page": per_page, "total_pages": pages,
        "total_entries": total, "next_page": page + 1 if page < pages else None,
        "previous_page": page - 1 if page > 1 else None, "page": page,
        "links": {"first": _page_url(request, 1),
                  "next": _page_url(request, page + 1) if page < pages else None,
                  "previous": _page_url(request, page - 1) if page > 1 else None,
                  "last": _page_url(request, pages)},
    })


def _get(state: SandboxState, resource: str, record_id: int) -> dict | None:
    if resource == "time_entries":
        return state.data.time_entries.get(record_id)
    return state.data.psa[resource].get(record_id)


def create_project(state: SandboxState, body: dict) -> Response:
    if not isinstance(body, dict):
        return _unprocessable("body must be a JSON object")
    missing = [f for f in ("name", "code", "billing_type") if not body.get(f)]
    unknown = [f for f in body if f not in PROJECT_FIELDS]
    if missing or unknown:
        return _unprocessable(f"missing fields {missing}, unknown fields {unknown}")
    if not CODE.match(str(body["code"])):
        return _unprocessable("code must look like PRJ-00042")
    if body["billing_type"] not in ("fixed_fee", "time_and_materials"):
        return _unprocessable("billing_type must be fixed_fee or time_and_materials")
    table = state.data.psa["projects"]
    now = iso_s(state.clock.tick())
    record = {"id": table.max_id() + 1, **{f: body.get(f) for f in PROJECT_FIELDS},
              "project_manager": None, "created_at": now, "updated_at": now}
    record["status"] = body.get("status") or "active"
    table.upsert(record)
    return json_response(record, 201)


def patch_record(state: SandboxState, resource: str, record_id: int, body: dict) -> Response:
    current = _get(state, resource, record_id)
    if current is None:
        return _not_found()
    allowed = PROJECT_FIELDS if resource == "projects" else TIME_ENTRY_FIELDS
    if not isinstance(body, dict) or not body:
        return _unprocessable("body must be a JSON object with the fields to change")
    unknown = [f for f in body if f not in allowed]
    if unknown:
        return _unprocessable(f"fields cannot be changed: {unknown}")
    record = {**current, **body, "updated_at": iso_s(state.clock.tick())}
    if resource == "time_entries":
        state.data.time_entries.replace(record)
    else:
        state.data.psa[resource].upsert(record)
    return json_response(record)


def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="PSA sandbox", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/v2/{resource}")
    async def list_route(resource: str, request: Request) -> Response:
        problem = _auth_problem(state, request)
        if problem:
            return problem
        if resource not in RESOURCES:
            return _not_found()
        with state.lock:
            return list_records(state, resource, request)

    @app.get("/v2/{resource}/{record_id}")
    async def get_route(resource: str, record_id: str, request: Request) -> Response:
        problem = _auth_problem(state, request)
        if problem:
            return problem
        record = _get(state, resource, int(record_id)) if (
            resource in RESOURCES and record_id.isdigit()) else None
        return json_response(record) if record else _not_found()

    @app.post("/v2/projects")
    async def create_route(request: Request) -> Response:
        problem = _auth_problem(state, request)
        if problem:
            return problem
        try:
            body = await json_body(request)
        except ValueError as exc:
            return _unprocessable(str(exc))
        with state.lock:
            return create_project(state, body)

    @app.patch("/v2/{resource}/{record_id}")
    async def patch_route(resource: str, record_id: str, request: Request) -> Response:
        problem = _auth_problem(state, request)
        if problem:
            return problem
        if resource not in ("projects", "time_entries") or not record_id.isdigit():
            return _not_found()
        try:
            body = await json_body(request)
        except ValueError as exc:
            return _unprocessable(str(exc))
        with state.lock:
            return patch_record(state, resource, int(record_id), body)

    return app
