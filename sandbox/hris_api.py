"""HRIS API (BambooHR style): Basic auth, custom report, time off, who's out."""

from __future__ import annotations

import base64
from datetime import date, timedelta

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from sandbox.http_json import json_body, json_response
from sandbox.middleware import SystemStyle
from sandbox.state import SandboxState

PREFIX = "/api/gateway.php/{company}/v1"
FIELD_TYPES = {
    "id": ("int", "EEID"), "displayName": ("text", "Display name"),
    "workEmail": ("email", "Work Email"), "jobTitle": ("list", "Job Title"),
    "department": ("list", "Department"), "location": ("list", "Location"),
    "status": ("status", "Status"), "hireDate": ("date", "Hire Date"),
    "terminationDate": ("date", "Termination Date"),
    "customStandardHoursPerWeek": ("int", "Standard Hours per Week"),
    "customCostRate": ("currency", "Cost Rate"),
    "customTargetUtilization": ("int", "Target Utilization %"),
}


def plain_error(status: int, message: str, headers: dict | None = None) -> Response:
    return Response(message, status_code=status, media_type="text/plain",
                    headers={"X-BambooHR-Error-Message": message, **(headers or {})})


def fault_response(status: int, retry_after: int | None) -> Response:
    if status in (429, 503) and retry_after is not None:
        return plain_error(status, "Service temporarily unavailable, please retry",
                           {"Retry-After": str(retry_after)})
    return plain_error(status, "Server error")


STYLE = SystemStyle(
    name="hris",
    is_write=lambda method, path: False,
    limit_key=lambda headers, path: headers.get("authorization", ""),
    fault_response=fault_response,
)


def _auth_problem(state: SandboxState, request: Request, company: str) -> Response | None:
    auth = request.headers.get("authorization", "")
    user = None
    if auth.startswith("Basic "):
        try:
            user = base64.b64decode(auth[6:]).decode("utf-8").partition(":")[0]
        except ValueError:
            user = None
    if user != state.credentials.hris_api_key:
        return plain_error(401, "Invalid API key",
                           {"WWW-Authenticate": 'Basic realm="BambooHR API"'})
    if company != state.credentials.hris_company:
        return plain_error(404, "Company not found")
    return None


def custom_report(state: SandboxState, request: Request, body) -> Response:
    if request.query_params.get("format", "").upper() != "JSON":
        return plain_error(400, "Only format=JSON is supported by the sandbox")
    fields = (body or {}).get("fields") if isinstance(body, dict) else None
    if not isinstance(fields, list) or not fields:
        return plain_error(400, "The request body must be {\"fields\": [...]}")
    unknown = [f for f in fields if f not in FIELD_TYPES]
    if unknown:
        return plain_error(400, f"Unknown fields: {', '.join(map(str, unknown))}")
    names = list(dict.fromkeys(["id", *fields]))
    employees = [{name: row[name] for name in names} for row in state.data.employees]
    return json_response({
        "title": "Custom report",
        "fields": [{"id": f, "type": FIELD_TYPES[f][0], "name": FIELD_TYPES[f][1]}
                   for f in fields],
        "employees": employees,
    })


def _window(request: Request, default_days: int, today: date) -> tuple[date, date]:
    start = request.query_params.get("start")
    end = request.query_params.get("end")
    first = date.fromisoformat(start) if start else today
    return first, date.fromisoformat(end) if end else first + timedelta(days=default_days)


def _overlaps(item: dict, first: date, last: date) -> bool:
    return item["start"] <= last.isoformat() and item["end"] >= first.isoformat()


def time_off_requests(state: SandboxState, request: Request) -> Response:
    if not request.query_params.get("start") or not request.query_params.get("end"):
        return plain_error(400, "start and end are required")
    try:
        first, last = _window(request, 0, state.data.today)
    except ValueError:
        return plain_error(400, "start and end must be dates (YYYY-MM-DD)")
    wanted = {s for s in request.query_params.get("status", "").split(",") if s}
    employee = request.query_params.get("employeeId")
    out = [r for r in state.data.time_off if _overlaps(r, first, last)
           and (not wanted or r["status"]["status"] in wanted)
           and (not employee or r["employeeId"] == employee)]
    return json_response(out)


def whos_out(state: SandboxState, request: Request) -> Response:
    try:
        first, last = _window(request, 14, state.data.today)
    except ValueError:
        return plain_error(400, "start and end must be dates (YYYY-MM-DD)")
    entries = [{"id": int(r["id"]), "type": "timeOff", "employeeId": int(r["employeeId"]),
                "name": r["name"], "start": r["start"], "end": r["end"]}
               for r in state.data.time_off
               if r["status"]["status"] == "approved" and _overlaps(r, first, last)]
    entries += [dict(h) for h in state.data.holidays if _overlaps(h, first, last)]
    entries.sort(key=lambda e: (e["start"], e["type"], e["id"]))
    return json_response(entries)


def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="HRIS sandbox", openapi_url=None, docs_url=None, redoc_url=None)

    @app.post(PREFIX + "/reports/custom")
    async def report_route(company: str, request: Request) -> Response:
        problem = _auth_problem(state, request, company)
        if problem:
            return problem
        try:
            body = await json_body(request)
        except ValueError as exc:
            return plain_error(400, str(exc))
        return custom_report(state, request, body)

    @app.get(PREFIX + "/time_off/requests")
    async def requests_route(company: str, request: Request) -> Response:
        return _auth_problem(state, request, company) or time_off_requests(state, request)

    @app.get(PREFIX + "/time_off/whos_out")
    async def whos_out_route(company: str, request: Request) -> Response:
        return _auth_problem(state, request, company) or whos_out(state, request)

    return app
