"""CRM API (HubSpot style): POST search with `after` cursor, PATCH deal."""

from __future__ import annotations

import hashlib

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from sandbox.http_json import json_body, json_response
from sandbox.isotime import iso_ms, parse_time
from sandbox.middleware import SystemStyle
from sandbox.state import SandboxState

MAX_LIMIT, MAX_RESULTS = 100, 10_000
DEAL_PROPERTIES = ("dealname", "amount", "deal_currency_code", "dealstage", "closedate",
                   "company_id", "billing_type", "region", "service_line",
                   "contract_signed_date", "sow_reference", "psa_project_id")
READ_ONLY = ("hs_object_id", "hs_lastmodifieddate", "createdate")
DEFAULT_PROPERTIES = {"deals": ("dealname", "amount", "closedate", "dealstage", "createdate"),
                      "companies": ("name", "domain", "createdate")}
TIME_PROPERTIES = ("hs_lastmodifieddate", "closedate", "createdate")
NUMBER_PROPERTIES = ("amount", "hs_object_id", "psa_project_id", "company_id")


def error(status: int, category: str, message: str, **extra) -> Response:
    correlation = hashlib.md5(f"{status}{message}".encode()).hexdigest()
    cid = f"{correlation[:8]}-{correlation[8:12]}-{correlation[12:16]}-{correlation[16:20]}-" \
          f"{correlation[20:32]}"
    body = {"status": "error", "message": message, "correlationId": cid,
            "category": category, **extra}
    return json_response(body, status)


def fault_response(status: int, retry_after: int | None) -> Response:
    if status == 429:
        response = error(429, "RATE_LIMITS", "You have reached your secondly limit.",
                         errorType="RATE_LIMIT", policyName="SECONDLY")
        response.headers["Retry-After"] = str(retry_after or 1)
        return response
    return error(status, "INTERNAL_ERROR", "internal error")


STYLE = SystemStyle(
    name="crm",
    is_write=lambda method, path: method in ("PATCH", "POST") and not path.endswith("/search"),
    limit_key=lambda headers, path: headers.get("authorization", ""),
    fault_response=fault_response,
)


def _authorized(state: SandboxState, request: Request) -> bool:
    return request.headers.get("authorization") == f"Bearer {state.credentials.crm_token}"


def unauthorized() -> Response:
    return error(401, "INVALID_AUTHENTICATION",
                 "Authentication credentials not found. This API supports OAuth 2.0 "
                 "authentication and you can find more details at "
                 "https://developers.hubspot.com/docs/methods/auth/oauth-overview")


def _comparable(name: str, value):
    """A sort/filter key for a property value.

    Times become the CRM's own ISO form with milliseconds (which sorts as text),
    whether given as epoch milliseconds or as ISO text; numbers become floats.
    """
    if value is None or value == "":
        return None
    if name in TIME_PROPERTIES:
        text = str(value)
        if text.lstrip("-").isdigit():
            return iso_ms(int(text))
        if len(text) == 24 and text[19] == "." and text.endswith("Z"):
            return text
        return iso_ms(parse_time(text) * 1000)
    if name in NUMBER_PROPERTIES:
        return float(value)
    return str(value)


def _matches(props: dict, flt: dict) -> bool:
    name, op = flt.get("propertyName"), flt.get("operator", "EQ")
    actual = _comparable(name, props.get(name))
    if op == "HAS_PROPERTY":
        return actual is not None
    if op == "NOT_HAS_PROPERTY":
        return actual is None
    if op == "IN":
        return actual in {_comparable(name, v) for v in flt.get("values", [])}
    wanted = _comparable(name, flt.get("value"))
    if op == "NEQ":
        return actual != wanted
    if actual is None or wanted is None:
        return False
    return {"EQ": actual == wanted, "GT": actual > wanted, "GTE": actual >= wanted,
            "LT": actual < wanted, "LTE": actual <= wanted}[op]


def _validate(body: dict) -> str | None:
    limit = body.get("limit", 10)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        return f"limit must be between 1 and {MAX_LIMIT}, got {limit}"
    for group in body.get("filterGroups") or []:
        for flt in group.get("filters") or []:
            if flt.get("operator", "EQ") not in ("EQ", "NEQ", "GT", "GTE", "LT", "LTE", "IN",
                                                 "HAS_PROPERTY", "NOT_HAS_PROPERTY"):
                return f"unsupported operator {flt.get('operator')}"
    after = str(body.get("after") or "0")
    if not after.isdigit():
        return f"after must be a number, got {after}"
    return None


def _sorted(records: list[dict], sorts: list) -> list[dict]:
    """Records in the asked order (tables are already in hs_lastmodifieddate, id order)."""
    if sorts and sorts[0].get("propertyName") == "hs_lastmodifieddate" and sorts[0].get(
            "direction", "ASCENDING").upper() == "ASCENDING":
        return records
    if not sorts:
        return sorted(records, key=lambda r: int(r["id"]))
    name = sorts[0].get("propertyName", "hs_object_id")
    descending = sorts[0].get("direction", "ASCENDING").upper() == "DESCENDING"

    def key(record):
        value = _comparable(name, record["properties"].get(name))
        return (value is None, value if value is not None else 0, int(record["id"]))

    return sorted(records, key=key, reverse=descending)


def _shape(record: dict, names) -> dict:
    props = record["properties"]
    chosen = {n: props.get(n) for n in names}
    chosen["hs_lastmodifieddate"] = props["hs_lastmodifieddate"]
    chosen["hs_object_id"] = props["hs_object_id"]
    return {"id": record["id"], "properties": chosen, "createdAt": record["createdAt"],
            "updatedAt": record["updatedAt"], "archived": False}


def search(state: SandboxState, object_type: str, body: dict) -> Response:
    table = state.data.crm.get(object_type)
    if table is None:
        return error(400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}")
    problem = _validate(body)
    if problem:
        return error(400, "VALIDATION_ERROR", problem)
    after, limit = int(body.get("after") or 0), body.get("limit", 10)
    if after >= MAX_RESULTS:
        return error(400, "VALIDATION_ERROR",
                     f"Paging beyond {MAX_RESULTS} results is not supported for search "
                     f"(after={after}). Narrow the query, for example by "
                     "hs_lastmodifieddate, and search again.")
    groups = body.get("filterGroups") or []
    hits = [r for r in table.all() if not groups or any(
        all(_matches(r["properties"], f) for f in g.get("filters") or []) for g in groups)]
    hits = _sorted(hits, body.get("sorts") or [])
    names = body.get("properties") or DEFAULT_PROPERTIES[object_type]
    page = [_shape(r, names) for r in hits[after: after + limit]]
    answer: dict = {"total": len(hits), "results": page}
    if after + limit < len(hits):
        answer["paging"] = {"next": {"after": str(after + limit)}}
    return json_response(answer)


def patch_deal(state: SandboxState, deal_id: str, body: dict) -> Response:
    record = state.data.crm["deals"].get(int(deal_id)) if deal_id.isdigit() else None
    if record is None:
        return error(404, "OBJECT_NOT_FOUND", "resource not found")
    changes = (body or {}).get("properties")
    if not isinstance(changes, dict):
        return error(400, "VALIDATION_ERROR", "body must be {\"properties\": {...}}")
    unknown = [n for n in changes if n not in DEAL_PROPERTIES]
    if unknown:
        return error(400, "VALIDATION_ERROR", f"Property values were not valid: {unknown} "
                     "do not exist or are read-only", subCategory="PROPERTY_DOESNT_EXIST")
    now_ms = state.clock.tick() * 1000
    props = dict(record["properties"])
    props.update({k: None if v is None else str(v) for k, v in changes.items()})
    props["hs_lastmodifieddate"] = iso_ms(now_ms)
    updated = {**record, "properties": props, "updatedAt": iso_ms(now_ms)}
    state.data.crm["deals"].upsert(updated)
    return json_response(updated)


def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="CRM sandbox", openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/crm/v3/objects/{object_type}/search")
    async def search_route(object_type: str, request: Request) -> Response:
        if not _authorized(state, request):
            return unauthorized()
        try:
            body = await json_body(request) or {}
        except ValueError as exc:
            return error(400, "VALIDATION_ERROR", str(exc))
        with state.lock:
            return search(state, object_type, body)

    @app.patch("/crm/v3/objects/deals/{deal_id}")
    async def patch_route(deal_id: str, request: Request) -> Response:
        if not _authorized(state, request):
            return unauthorized()
        try:
            body = await json_body(request)
        except ValueError as exc:
            return error(400, "VALIDATION_ERROR", str(exc))
        with state.lock:
            return patch_deal(state, deal_id, body)

    @app.get("/crm/v3/objects/{object_type}/{object_id}")
    async def get_route(object_type: str, object_id: str, request: Request) -> Response:
        if not _authorized(state, request):
            return unauthorized()
        table = state.data.crm.get(object_type)
        record = table.get(int(object_id)) if table and object_id.isdigit() else None
        if record is None:
            return error(404, "OBJECT_NOT_FOUND", "resource not found")
        names = request.query_params.get("properties")
        return json_response(_shape(record, names.split(",")) if names else record)

    return app
