"""The finance pages of psops: a FastAPI app the Airflow api-server mounts at /psops.

    /psops/billing       what can be invoiced, what blocks the rest, who must act
    /psops/exceptions    the data-quality exception queue (open and recently resolved)
    /psops/utilization   12 weeks of utilization vs target, timesheet compliance
    /psops/data-docs/    the Great Expectations Data Docs of the last validation

The pages are for finance only: every route but /static needs an Airflow login of
a user named in `PSOPS_FINANCE_USERS` (psops.finance_access; the same users the
approval of corrections is assigned to). A browser (Accept: text/html) without a
login is redirected to the Airflow login page and comes back after it; a logged-in
user who is not finance gets a 403 page saying so (never the login page again);
any other client gets the 401/403 as JSON. /static (the stylesheet and the nav
icon, no data) only needs a login: the Airflow navigation shows the Finance icon to
every user. Every warehouse query runs read-only as `psops_analyst`
(psops.db.analyst_connection); each page's reads are in its module (billing.py,
exceptions_page.py, utilization.py; shared ones in queries.py).
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from psops.db import WarehouseUnavailable, analyst_connection
from psops.finance_access import finance_users
from psops.settings import DATA_DOCS_DIR, FINANCE_USERS
from psops.ui import billing as billing_page
from psops.ui import charts, exceptions_page, queries
from psops.ui import utilization as utilization_page
from psops.ui.provenance import find_provenance

log = logging.getLogger(__name__)

URL_PREFIX = "/psops"
HERE = Path(__file__).resolve().parent

TEMPLATES = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters["money"] = charts.money
TEMPLATES.filters["pct"] = charts.pct


def _auth_dependency():
    from airflow.api_fastapi.core_api.security import requires_authenticated

    return Depends(requires_authenticated())


class NotFinanceUser(HTTPException):
    """403: logged in, but not one of the finance users."""

    def __init__(self, detail: str):
        super().__init__(status_code=403, detail=detail)


def _finance_dependency():
    """Logged in (Airflow's `get_user`: 401 without a token) as a finance user, decided
    by the auth manager's `is_authorized_hitl_task` with the finance users as the
    assignees: the very check Airflow applies to the approval task's answers."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import get_user

    def requires_finance_user(user=Depends(get_user)) -> None:  # noqa: B008 - FastAPI idiom
        try:
            allowed = set(finance_users())
        except ValueError as exc:  # fail closed, and say why
            log.error("psops UI: %s", exc)
            raise NotFinanceUser(str(exc)) from None
        if not get_auth_manager().is_authorized_hitl_task(assigned_users=allowed, user=user):
            raise NotFinanceUser(f"These pages are for finance users only ({FINANCE_USERS.name}); "
                                 f"{user.get_name()!r} is not one of them.")

    return Depends(requires_finance_user)


# Every page: finance only (create_app adds the finance dependency when it includes it).
pages = APIRouter()
# Login only: the stylesheet and the nav icon, which every user's navigation shows.
static_files = APIRouter()


def create_app() -> FastAPI:
    """The app; it reads the warehouse through the Airflow connection `warehouse`."""
    app = FastAPI(
        title="psops finance",
        description="Billing readiness, exceptions and utilization for finance (read-only).",
        dependencies=[_auth_dependency()],
        docs_url=None, redoc_url=None, openapi_url=None,
    )
    app.add_exception_handler(HTTPException, login_redirect)
    app.add_exception_handler(WarehouseUnavailable, warehouse_down)
    app.include_router(static_files)
    app.include_router(pages, dependencies=[_finance_dependency()])
    return app


async def login_redirect(request: Request, exc: HTTPException):
    browser = "text/html" in request.headers.get("accept", "")
    if isinstance(exc, NotFinanceUser):  # logged in: explain, never back to the login
        if browser:
            return HTMLResponse(_render(request, "forbidden.html", page="",
                                        message=exc.detail, setting=FINANCE_USERS.name),
                                status_code=403)
    elif exc.status_code in (401, 403) and browser:
        return RedirectResponse(_login_url(request), status_code=307)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                        headers=exc.headers)


async def warehouse_down(request: Request, exc: WarehouseUnavailable):
    log.error("psops UI: %s", exc)
    return HTMLResponse(_render(request, "error.html", page="", message=str(exc)),
                        status_code=503)


@pages.get("/", include_in_schema=False)
def index(request: Request):
    return RedirectResponse(f"{request.scope.get('root_path', '')}/billing", status_code=307)


@pages.get("/billing", response_class=HTMLResponse)
def billing(request: Request, as_of: str | None = None, region: str | None = None,
            project: str | None = None, billing_type: str | None = None):
    chosen = _parse_date(as_of)
    filters = billing_page.BillingFilters(region or None, project or None, billing_type or None)
    with analyst_connection() as conn:
        dates = queries.as_of_dates(conn)
        effective = queries.marts_as_of(conn, chosen)
        if effective is None:
            return _empty(request, "billing", dates, chosen)
        view = billing_page.billing_view(conn, effective, filters)
        view.kpis = queries.process_kpis(conn, effective)
        pinned = queries.transform_run_ids(conn, effective)
    return HTMLResponse(_render(
        request, "billing.html", page="billing", view=view, dates=dates, chosen=chosen,
        filters=filters, provenance=find_provenance(_ui_base(request), effective, pinned),
    ))


@pages.get("/exceptions", response_class=HTMLResponse)
def exceptions(request: Request, rule: str | None = None, severity: str | None = None):
    with analyst_connection() as conn:
        view = exceptions_page.exceptions_view(conn, rule or None, severity or None)
        latest = queries.marts_as_of(conn, None)
        pinned = queries.transform_run_ids(conn, latest) if latest else []
    provenance = find_provenance(_ui_base(request), latest, pinned) if latest else None
    return HTMLResponse(_render(
        request, "exceptions.html", page="exceptions", view=view, rule=rule or "",
        severity=severity or "", provenance=provenance, effective=latest,
        resolved_days=exceptions_page.RESOLVED_RECENTLY_DAYS,
    ))


@pages.get("/utilization", response_class=HTMLResponse)
def utilization(request: Request, as_of: str | None = None, region: str | None = None):
    chosen = _parse_date(as_of)
    with analyst_connection() as conn:
        dates = queries.as_of_dates(conn)
        effective = queries.marts_as_of(conn, chosen, mart="utilization_weekly")
        if effective is None:
            return _empty(request, "utilization", dates, chosen)
        view = utilization_page.utilization_view(conn, effective, region or None)
        kpis = queries.process_kpis(conn, effective)
        pinned = queries.transform_run_ids(conn, effective)
    return HTMLResponse(_render(
        request, "utilization.html", page="utilization", view=view, dates=dates,
        chosen=chosen, region=region or "", kpis=kpis,
        provenance=find_provenance(_ui_base(request), effective, pinned),
        **_utilization_charts(view),
    ))


def _utilization_charts(view: utilization_page.UtilizationView) -> dict:
    """The utilization page's people below target and its SVG charts."""
    under = [p for p in view.people if p["under_target"]]
    return {
        "under": under,
        "under_chart": charts.person_bars(under[:25], "Furthest below target first "
                                          "(bar: utilization, black tick: target)")
        if under else "",
        "region_charts": [charts.region_weeks(r, view.weeks) for r in view.regions],
        "sparklines": {p["employee_id"]: charts.sparkline(p["weekly"], view.weeks, p["target"])
                       for p in view.people},
        "compliance_chart": charts.compliance_bars(view.compliance_weeks),
    }


@pages.get("/data-docs", include_in_schema=False)
def data_docs_root(request: Request):
    return RedirectResponse(f"{request.scope.get('root_path', '')}/data-docs/index.html",
                            status_code=307)


@pages.get("/data-docs/{path:path}", include_in_schema=False)
async def data_docs(path: str, request: Request):
    directory = DATA_DOCS_DIR.path()
    if not (directory / "index.html").is_file():
        return HTMLResponse(_render(
            request, "error.html", page="", message=(
                f"No Data Docs yet in {directory}: they are written by the quality_gates "
                "task of psops_transform.")), status_code=404)
    files = StaticFiles(directory=directory, html=True, check_dir=False)
    return await files.get_response(path or "index.html", request.scope)


@static_files.get("/static/{path:path}", include_in_schema=False)
async def static(path: str, request: Request):
    return await StaticFiles(directory=HERE / "static").get_response(path, request.scope)


def _parse_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HTTPException(status_code=400, detail="as_of must be a date YYYY-MM-DD") from None


def _ui_base(request: Request) -> str:
    """The Airflow UI's base path, from where this app is mounted."""
    root = request.scope.get("root_path", "")
    return root[: -len(URL_PREFIX)] if root.endswith(URL_PREFIX) else root


def _login_url(request: Request) -> str:
    root, path = request.scope.get("root_path", ""), request.url.path
    if not path.startswith(root + "/"):  # older Starlette: path relative to the mount
        path = root + path
    target = path + (f"?{request.url.query}" if request.url.query else "")
    try:
        from airflow.api_fastapi.app import get_auth_manager

        url = get_auth_manager().get_url_login(next_url=target)
    except Exception:  # noqa: BLE001 - no auth manager: the UI's own login route
        url = "/auth/login?" + urlencode({"next": target})
    return url if url.startswith(("http://", "https://")) else _ui_base(request) + url


def _render(request: Request, template: str, **context) -> str:
    root = request.scope.get("root_path", "")
    return TEMPLATES.get_template(template).render(
        root=root, ui_base=_ui_base(request), query=dict(request.query_params), **context)


def _empty(request: Request, page: str, dates, chosen) -> HTMLResponse:
    message = ("No marts yet for this date. They are built by the psops_transform DAG; "
               "pick another date or run the pipeline.")
    return HTMLResponse(_render(request, "error.html", page=page, message=message,
                                dates=dates, chosen=chosen))


app = create_app()
