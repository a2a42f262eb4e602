"""ERP API (NetSuite REST style): OAuth2 client credentials, limit/offset records."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from sandbox.http_json import json_body, json_response, query_int
from sandbox.isotime import iso_s, parse_time
from sandbox.middleware import SystemStyle
from sandbox.state import SandboxState

BASE = "/services/rest/record/v1"
Q_FILTER = re.compile(r'^\s*lastModifiedDate\s+(ON_OR_AFTER|AFTER)\s+"([^"]+)"\s*$')
CREATE_FIELDS = {"job": ("entityId", "companyName", "customer", "status", "externalId",
                         "startDate", "subsidiary"),
                 "billingMilestone": ("job", "externalId", "amount", "billDate")}
REQUIRED = {"job": ("entityId", "customer", "externalId"),
            "billingMilestone": ("job", "externalId", "amount")}
TITLES = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
          500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
          504: "Gateway Timeout"}


def error(status: int, code: str, detail: str) -> Response:
    return json_response({
        "type": f"https://www.rfc-editor.org/rfc/rfc9110.html#section-15.{status // 100}",
        "title": TITLES.get(status, "Error"), "status": status,
        "o:errorDetails": [{"detail": detail, "o:errorCode": code}],
    }, status)


def fault_response(status: int, retry_after: int | None) -> Response:
    del retry_after  # the ERP never sends Retry-After
    if status == 429:
        return error(429, "CONCURRENCY_LIMIT_EXCEEDED",
                     "Concurrent request limit exceeded. Request blocked.")
    return error(status, "UNEXPECTED_ERROR", "An unexpected error occurred.")


def _client_key(headers: dict[str, str], path: str) -> str:
    """Concurrency is counted per client: the sandbox has one, whatever token it holds."""
    if path == "/oauth2/token":
        return "token-endpoint"
    return "client" if headers.get("authorization", "").startswith("Bearer ") else "anonymous"


STYLE = SystemStyle(
    name="erp",
    is_write=lambda method, path: method in ("POST", "PATCH") and path != "/oauth2/token",
    limit_key=_client_key,
    fault_response=fault_response,
)


def _unauthorized() -> Response:
    return error(401, "INVALID_LOGIN", "Invalid login attempt. For more details, see the Login "
                 "Audit Trail in the NetSuite UI at Setup > Users/Roles > User Management > "
                 "View Login Audit Trail.")


def _token_ok(state: SandboxState, request: Request) -> bool:
    auth = request.headers.get("authorization", "")
    return auth.startswith("Bearer ") and state.erp_token_valid(auth[7:])


async def issue_token(state: SandboxState, request: Request) -> Response:
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace"),
                                         keep_blank_values=True).items()}
    auth = request.headers.get("authorization", "")
    if auth.startswith("Basic "):
        user, _, secret = base64.b64decode(auth[6:]).decode("utf-8", "replace").partition(":")
        form.setdefault("client_id", user)
        form.setdefault("client_secret", secret)
    if form.get("grant_type") != "client_credentials":
        return json_response({"error": "unsupported_grant_type"}, 400)
    creds = state.credentials
    if (form.get("client_id"), form.get("client_secret")) != (creds.erp_client_id,
                                                              creds.erp_client_secret):
        return json_response({"error": "invalid_client"}, 401)
    token, lifetime = state.issue_erp_token(form["client_id"])
    return json_response({"access_token": token, "token_type": "Bearer",
                          "expires_in": lifetime})


def _links(request: Request, offset: int, limit: int, total: int) -> list[dict]:
    def url(at: int) -> str:
        params = dict(request.query_params)
        params.update(offset=str(at), limit=str(limit))
        return str(request.url.replace(query=urlencode(params)))

    last = max(0, (total - 1) // limit * limit)
    links = [{"rel": "first", "href": url(0)}, {"rel": "last", "href": url(last)}]
    if offset > 0:
        links.append({"rel": "previous", "href": url(max(0, offset - limit))})
    if offset + limit < total:
        links.append({"rel": "next", "href": url(offset + limit)})
    links.append({"rel": "self", "href": str(request.url)})
    return links


def list_records(state: SandboxState, record_type: str, request: Request) -> Response:
    try:
        limit, offset = query_int(request, "limit", 1000), query_int(request, "offset", 0)
    except ValueError:
        return error(400, "INVALID_PARAMETER", "limit and offset must be integers")
    if not 1 <= limit <= 1000 or offset < 0:
        return error(400, "INVALID_PARAMETER", "limit must be 1..1000 and offset >= 0")
    since = None
    q = request.query_params.get("q")
    if q:
        match = Q_FILTER.match(q)
        try:
            since = parse_time(match.group(2)) + (match.group(1) == "AFTER") if match else None
        except ValueError:
            since = None
        if since is None:
            return error(400, "INVALID_PARAMETER", f"Invalid query: {q}")
    rows = state.data.erp[record_type].slice_since(None if since is None else iso_s(since))
    items = rows[offset: offset + limit]
    return json_response({"links": _links(request, offset, limit, len(rows)),
                          "count": len(items), "hasMore": offset + limit < len(rows),
                          "offset": offset, "totalResults": len(rows), "items": items})


def find(state: SandboxState, record_type: str, key: str) -> dict | None:
    table = state.data.erp[record_type]
    if key.startswith("eid:"):
        external = key[4:]
        return next(iter(table.find(lambda r: r.get("externalId") == external)), None)
    return table.get(int(key)) if key.isdigit() else None


def _missing(record_type: str, key: str) -> Response:
    return error(404, "NONEXISTENT_ID", f"The record instance does not exist. Provide a valid "
                 f"record instance ID. ({record_type} {key})")


def patch(state: SandboxState, record_type: str, key: str, body) -> Response:
    record = find(state, record_type, key)
    if record is None:
        return _missing(record_type, key)
    if not isinstance(body, dict):
        return error(400, "INVALID_CONTENT", "The request body must be a JSON object.")
    unknown = [f for f in body if f not in record or f in ("id", "lastModifiedDate")]
    if unknown:
        return error(400, "INVALID_FIELD", f"Invalid field(s) for {record_type}: {unknown}")
    changed = {**record, **body, "lastModifiedDate": iso_s(state.clock.tick())}
    state.data.erp[record_type].upsert(changed)
    return Response(status_code=204)


def _reference(state: SandboxState, record_type: str, ref) -> dict | None:
    if not isinstance(ref, dict) or ref.get("id") is None:
        return None
    record = state.data.erp[record_type].get(int(ref["id"])) if str(ref["id"]).isdigit() else None
    if record is None:
        return None
    name = record.get("entityId") or record.get("companyName")
    return {"id": record["id"], "refName": name}


def create(state: SandboxState, record_type: str, body, request: Request) -> Response:
    if not isinstance(body, dict):
        return error(400, "INVALID_CONTENT", "The request body must be a JSON object.")
    unknown = [f for f in body if f not in CREATE_FIELDS[record_type]]
    missing = [f for f in REQUIRED[record_type] if body.get(f) in (None, "")]
    if unknown or missing:
        return error(400, "USER_ERROR", f"Invalid or missing fields: unknown {unknown}, "
                     f"missing {missing}")
    record = {f: body.get(f) for f in CREATE_FIELDS[record_type]}
    ref_field, ref_type = ("customer", "customer") if record_type == "job" else ("job", "job")
    record[ref_field] = _reference(state, ref_type, body.get(ref_field))
    if record[ref_field] is None:
        return error(400, "INVALID_KEY_OR_REF", f"Invalid {ref_field} reference key.")
    if record_type == "job":
        record["status"] = record["status"] or "active"
        region = (body.get("subsidiary") or {}).get("id")
        record["subsidiary"] = {"id": str(region), "refName": {"1": "NA", "2": "EMEA", "3": "APAC"}
                                .get(str(region))} if region else None
    table = state.data.erp[record_type]
    record["id"] = str(table.max_id() + 1)
    record["lastModifiedDate"] = iso_s(state.clock.tick())
    table.upsert(record)
    location = str(request.url.replace(query="", path=f"{BASE}/{record_type}/{record['id']}"))
    return Response(status_code=204, headers={"Location": location})


def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="ERP sandbox", openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/oauth2/token")
    async def token_route(request: Request) -> Response:
        return await issue_token(state, request)

    @app.get(BASE + "/{record_type}")
    async def list_route(record_type: str, request: Request) -> Response:
        if not _token_ok(state, request):
            return _unauthorized()
        if record_type not in state.data.erp:
            return error(404, "INVALID_RECORD_TYPE", f"Record type {record_type} does not exist.")
        with state.lock:
            return list_records(state, record_type, request)

    @app.get(BASE + "/{record_type}/{key}")
    async def get_route(record_type: str, key: str, request: Request) -> Response:
        if not _token_ok(state, request):
            return _unauthorized()
        if record_type not in state.data.erp:
            return error(404, "INVALID_RECORD_TYPE", f"Record type {record_type} does not exist.")
        record = find(state, record_type, key)
        return json_response(record) if record else _missing(record_type, key)

    @app.patch(BASE + "/{record_type}/{key}")
    async def patch_route(record_type: str, key: str, request: Request) -> Response:
        if not _token_ok(state, request):
            return _unauthorized()
        if record_type not in state.data.erp:
            return error(404, "INVALID_RECORD_TYPE", f"Record type {record_type} does not exist.")
        try:
            body = await json_body(request)
        except ValueError as exc:
            return error(400, "INVALID_CONTENT", str(exc))
        with state.lock:
            return patch(state, record_type, key, body)

    @app.post(BASE + "/{record_type}")
    async def create_route(record_type: str, request: Request) -> Response:
        if not _token_ok(state, request):
            return _unauthorized()
        if record_type not in CREATE_FIELDS:
            return error(400, "INVALID_RECORD_TYPE",
                         f"Creating {record_type} records is not supported.")
        try:
            body = await json_body(request)
        except ValueError as exc:
            return error(400, "INVALID_CONTENT", str(exc))
        with state.lock:
            return create(state, record_type, body, request)

    return app
