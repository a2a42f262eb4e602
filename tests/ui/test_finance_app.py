"""The finance plugin app (mounted at /psops by the api-server), in process: login
required, finance users only (also through a real api-server), figures equal to the
warehouse, queries as psops_analyst, links to runs. (Over 300 lines: every page's
checks share one warehouse built for the module.)"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import markupsafe
import psycopg
import pytest

from psops.db import WarehouseUnavailable, analyst_connection
from psops.ui import charts
from tests.conftest import temporary_environment as environment
from tests.ui.conftest import (
    AS_OF,
    FINANCE_PASSWORD,
    FINANCE_USER,
    OTHER_PASSWORD,
    OTHER_USER,
    login_token,
)

PAGES = ["/billing", "/exceptions", "/utilization", "/data-docs/index.html", "/"]


def _card(html: str, card_id: str) -> str:
    match = re.search(rf'id="{card_id}">(.*?)<div class="sub">', html, re.S)
    assert match, f"card {card_id} missing"
    return match.group(1)


def _by_currency(conn, status: str, where: str = "", params: tuple = ()) -> dict[str, Decimal]:
    rows = conn.execute(
        "SELECT br.currency, sum(br.amount), count(*) FROM marts.billing_readiness br "
        "JOIN curated.projects p ON p.project_id = br.project_id "
        f"WHERE br.as_of = %s AND br.status = %s {where} GROUP BY br.currency",
        (AS_OF, status, *params)).fetchall()
    return {cur: amount for cur, amount, _ in rows}


def _count(conn, status: str, where: str = "", params: tuple = ()) -> int:
    return conn.execute(
        "SELECT count(*) FROM marts.billing_readiness br "
        "JOIN curated.projects p ON p.project_id = br.project_id "
        f"WHERE br.as_of = %s AND br.status = %s {where}", (AS_OF, status, *params)).fetchone()[0]


# --------------------------------------------------------------------------
# No login, no data
# --------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_without_login_an_api_client_gets_401_and_no_data(ui_client, page):
    response = ui_client.get(page, follow_redirects=False)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert "PRJ-" not in response.text and "Not authenticated" in response.text


@pytest.mark.parametrize("page", ["/billing", "/utilization?region=EMEA", "/exceptions"])
def test_without_login_a_browser_is_sent_to_the_login_page(ui_client, page):
    response = ui_client.get(page, headers={"accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/auth/login?next=" + quote(f"/psops{page}", safe="")
    assert response.content == b""


def test_a_forged_token_gets_no_data(ui_client):
    response = ui_client.get("/billing", cookies={"_token": "not.a.jwt"}, follow_redirects=False)
    assert response.status_code in (401, 403)
    assert "PRJ-" not in response.text


def test_with_the_ui_login_cookie_or_a_bearer_token_pages_answer(ui_client, airflow_auth):
    token = airflow_auth()
    for page in PAGES[:4]:
        assert ui_client.get(page, cookies={"_token": token}).status_code == 200, page
    bearer = ui_client.get("/billing", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 200


# --------------------------------------------------------------------------
# Finance users only (PSOPS_FINANCE_USERS)
# --------------------------------------------------------------------------

# Routes a logged-in non-finance user may open, with a URL to try: the stylesheet and
# the nav icon, which the Airflow navigation shows to every user. No data.
LOGIN_ONLY = {"/static/{path:path}": "/static/finance.svg"}


def _every_route():
    """(method, URL) for every route of the app, path parameters filled in: a route
    added later is covered without touching this test."""
    from fastapi.routing import APIRoute

    from psops.ui.app import create_app

    routes = create_app().routes
    assert all(isinstance(r, APIRoute) for r in routes), \
        [r for r in routes if not isinstance(r, APIRoute)]  # a mount would escape the check
    for route in routes:
        url = LOGIN_ONLY.get(route.path) or re.sub(r"\{[^}]+\}", "index.html", route.path)
        for method in sorted(route.methods):
            yield route.path, method, url


ROUTES = list(_every_route())


def test_the_route_list_covers_every_page():
    paths = {path for path, _, _ in ROUTES}
    assert {"/", "/billing", "/exceptions", "/utilization", "/data-docs",
            "/data-docs/{path:path}", "/static/{path:path}"} <= paths
    assert set(LOGIN_ONLY) <= paths


@pytest.mark.parametrize(("path", "method", "url"), ROUTES)
def test_a_logged_in_non_finance_user_gets_403_from_every_finance_route(
        ui_client, airflow_auth, path, method, url):
    for role in ("user", "admin"):  # no Airflow role makes one finance
        cookies = {"_token": airflow_auth(OTHER_USER, role)}
        api = ui_client.request(method, url, cookies=cookies, follow_redirects=False)
        page = ui_client.request(method, url, cookies=cookies, headers={"accept": "text/html"},
                                 follow_redirects=False)
        if path in LOGIN_ONLY:
            assert api.status_code == page.status_code == 200, path
            continue
        assert api.status_code == 403, (path, role, api.status_code)
        assert "PSOPS_FINANCE_USERS" in api.json()["detail"]
        # a browser gets the explanation, not the login page again (no redirect loop)
        assert page.status_code == 403 and "location" not in page.headers
        if method == "GET":
            assert 'id="forbidden"' in page.text and "PSOPS_FINANCE_USERS" in page.text
            assert f"{OTHER_USER!r} is not one of them" in markupsafe.Markup(page.text).unescape()
        for response in (api, page):
            assert "PRJ-" not in response.text and "USD" not in response.text


@pytest.mark.parametrize(("path", "method", "url"), ROUTES)
def test_the_finance_user_gets_every_route(ui_client, airflow_auth, path, method, url):
    response = ui_client.request(method, url, cookies={"_token": airflow_auth(FINANCE_USER)},
                                 headers={"accept": "text/html"}, follow_redirects=False)
    assert response.status_code in (200, 307), (path, response.status_code)
    if response.status_code == 307:  # "/" and "/data-docs": on to a page of the app
        assert response.headers["location"].startswith("/psops/")


def test_the_finance_users_come_from_the_setting_at_request_time(ui_client, airflow_auth,
                                                                 monkeypatch):
    monkeypatch.setenv("PSOPS_FINANCE_USERS", " alice, bob ,")
    assert ui_client.get("/billing", cookies={"_token": airflow_auth("bob")}).status_code == 200
    assert ui_client.get("/billing", cookies={"_token": airflow_auth(FINANCE_USER)}
                         ).status_code == 403
    monkeypatch.setenv("PSOPS_FINANCE_USERS", " , ")  # names nobody: closed, and says why
    refused = ui_client.get("/billing", cookies={"_token": airflow_auth(FINANCE_USER)})
    assert refused.status_code == 403 and "names no user" in refused.json()["detail"]


def test_through_the_api_server_a_non_finance_user_gets_403(api_server):
    import requests

    url = f"{api_server.url}/psops/billing"
    other = login_token(api_server, OTHER_USER, OTHER_PASSWORD)
    refused = requests.get(url, headers={"Authorization": f"Bearer {other}"}, timeout=30)
    assert refused.status_code == 403 and "PSOPS_FINANCE_USERS" in refused.json()["detail"]
    page = requests.get(url, cookies={"_token": other}, headers={"accept": "text/html"},
                        allow_redirects=False, timeout=30)
    assert page.status_code == 403 and 'id="forbidden"' in page.text
    assert "PRJ-" not in refused.text + page.text
    finance = login_token(api_server, FINANCE_USER, FINANCE_PASSWORD)
    allowed = requests.get(url, headers={"Authorization": f"Bearer {finance}"}, timeout=30)
    assert allowed.status_code == 200 and "PRJ-" in allowed.text


# --------------------------------------------------------------------------
# Read-only, as psops_analyst
# --------------------------------------------------------------------------


def test_every_query_runs_as_psops_analyst_read_only(finance_warehouse):
    with environment(AIRFLOW_CONN_WAREHOUSE=finance_warehouse.uri):
        with analyst_connection() as conn:
            assert conn.execute("SELECT current_user AS u").fetchone()["u"] == "psops_analyst"
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM confidential.employee_cost_rates")
        with analyst_connection() as conn:
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("DELETE FROM marts.billing_readiness")
    with finance_warehouse.conn() as conn:  # the owner still sees the rows
        assert conn.execute("SELECT count(*) FROM confidential.employee_cost_rates").fetchone()[0] > 0


def test_a_warehouse_user_that_cannot_become_the_analyst_is_refused(finance_warehouse):
    with finance_warehouse.conn() as admin:
        admin.execute("DROP ROLE IF EXISTS psops_ui_outsider")
        admin.execute("CREATE ROLE psops_ui_outsider LOGIN")
    outsider = dataclasses.replace(finance_warehouse.target, user="psops_ui_outsider")
    try:
        with environment(AIRFLOW_CONN_WAREHOUSE=outsider.airflow_uri()):
            with pytest.raises(WarehouseUnavailable, match="SET ROLE psops_analyst"):
                with analyst_connection():
                    pass
    finally:
        with finance_warehouse.conn() as admin:
            admin.execute("DROP ROLE psops_ui_outsider")


def test_hostile_filter_values_are_parameters_not_sql(ui_client, airflow_auth):
    response = ui_client.get("/billing", params={"region": "EMEA' OR '1'='1", "project": "x'; --"},
                             cookies={"_token": airflow_auth()})
    assert response.status_code == 200
    assert 'id="ready-count">0<' in response.text and 'id="blocked-count">0<' in response.text


# --------------------------------------------------------------------------
# The figures equal the warehouse
# --------------------------------------------------------------------------


def test_billing_headline_figures_equal_the_mart(ui_client, airflow_auth, finance_warehouse):
    html = ui_client.get("/billing", cookies={"_token": airflow_auth()}).text
    with finance_warehouse.conn() as conn:
        for status, card in (("ready", "card-ready"), ("blocked", "card-blocked")):
            expected = _by_currency(conn, status)
            assert expected, f"the sandbox has {status} items"
            shown = _card(html, card)
            for currency, amount in expected.items():
                assert f'{currency}</span> {charts.money(amount)}' in shown, (status, currency)
        assert f'id="ready-count">{_count(conn, "ready")}<' in html
        assert f'id="blocked-count">{_count(conn, "blocked")}<' in html
        assert f"as of {AS_OF.isoformat()}" in html


def test_billing_filters_by_region_project_and_billing_type(ui_client, airflow_auth,
                                                             finance_warehouse):
    token = airflow_auth()
    with finance_warehouse.conn() as conn:
        html = ui_client.get("/billing", params={"region": "EMEA", "billing_type": "fixed_fee"},
                             cookies={"_token": token}).text
        where, params = "AND p.region = %s AND br.billing_type = %s", ("EMEA", "fixed_fee")
        for currency, amount in _by_currency(conn, "ready", where, params).items():
            assert f'{currency}</span> {charts.money(amount)}' in _card(html, "card-ready")
        assert f'id="blocked-count">{_count(conn, "blocked", where, params)}<' in html

        code = conn.execute(
            "SELECT project_code FROM marts.billing_readiness WHERE as_of = %s AND status = "
            "'blocked' ORDER BY amount DESC LIMIT 1", (AS_OF,)).fetchone()[0]
        html = ui_client.get("/billing", params={"project": code}, cookies={"_token": token}).text
        assert f'id="blocked-count">{_count(conn, "blocked", "AND br.project_code = %s", (code,))}<' in html
        assert set(re.findall(r'data-item="([^/"]+)/', html)) == {code}


def test_every_blocked_item_shows_its_reasons_and_blocking_records(ui_client, airflow_auth,
                                                                   finance_warehouse):
    html = ui_client.get("/billing", cookies={"_token": airflow_auth()}).text
    with finance_warehouse.conn() as conn:
        blockers = conn.execute(
            "SELECT project_code, item_id, reason, blocking_record_id "
            "FROM marts.billing_readiness_blockers WHERE as_of = %s", (AS_OF,)).fetchall()
        reasons = conn.execute(
            "SELECT r, count(*) FROM marts.billing_readiness, unnest(blocking_reasons) r "
            "WHERE as_of = %s AND status = 'blocked' GROUP BY r", (AS_OF,)).fetchall()
    items = dict(re.findall(r'data-item="([^"]+)"(.*?)</details>', html, re.S))
    for code, item_id, reason, record in blockers:
        block = items[f"{code}/{item_id}"]
        assert f"<code>{record}</code>" in block and reason in block
    for reason, n in reasons:
        row = re.search(rf'data-reason="{reason}">.*?class="num reason-items">(\d+)<', html, re.S)
        assert row and int(row.group(1)) == n, reason
    # who must act: a named person (the PM or the entry's author) or the finance team
    assert "Who to chase" in html and "@psops-demo.com" in html


def test_business_words_and_regions_come_from_the_warehouse(ui_client, airflow_auth,
                                                            finance_warehouse):
    """A reason's title and next action, and an office's region, are rows of the
    reference tables (migration 0008): changing them there changes the pages."""
    token = airflow_auth()
    with finance_warehouse.conn() as conn:
        reason, title, action = conn.execute(
            "SELECT reason, title, action FROM reference.blocking_reasons "
            "WHERE reason = 'RATE_MISMATCH'").fetchone()
        office, region = conn.execute(
            "SELECT office, region FROM reference.office_regions WHERE office = 'Berlin'"
        ).fetchone()
        conn.execute("UPDATE reference.blocking_reasons SET title = 'Rate off card', "
                     "action = 'Call the rate desk' WHERE reason = %s", (reason,))
        conn.execute("UPDATE reference.office_regions SET region = 'DACH' WHERE office = %s",
                     (office,))
    try:
        billing = ui_client.get("/billing", cookies={"_token": token}).text
        row = re.search(rf'data-reason="{reason}">(.*?)</tr>', billing, re.S)
        assert row and "Rate off card" in row.group(1) and "Call the rate desk" in row.group(1)
        utilization = ui_client.get("/utilization", params={"region": "DACH"},
                                    cookies={"_token": token}).text
        assert 'data-region="DACH"' in utilization and 'data-region="EMEA"' not in utilization
    finally:
        with finance_warehouse.conn() as conn:
            conn.execute("UPDATE reference.blocking_reasons SET title = %s, action = %s "
                         "WHERE reason = %s", (title, action, reason))
            conn.execute("UPDATE reference.office_regions SET region = %s WHERE office = %s",
                         (region, office))


def test_exceptions_page_shows_the_open_queue_by_rule(ui_client, airflow_auth, finance_warehouse):
    html = ui_client.get("/exceptions", cookies={"_token": airflow_auth()}).text
    with finance_warehouse.conn() as conn:
        by_rule = conn.execute(
            "SELECT rule_id, count(*) FROM ops.exceptions WHERE status = 'open' GROUP BY rule_id"
        ).fetchall()
        errors = conn.execute("SELECT count(*) FROM ops.exceptions WHERE status = 'open' "
                              "AND severity = 'error'").fetchone()[0]
    assert by_rule and errors
    assert f'id="open-errors">{errors}<' in html
    for rule_id, n in by_rule:
        row = re.search(rf'data-rule="{re.escape(rule_id)}">.*?class="num rule-count">(\d+)<',
                        html, re.S)
        assert row and int(row.group(1)) == n, rule_id
    from psops.transform.rules import load_catalogue

    meaning = load_catalogue().rule("time_entry.hours_range").description
    assert str(markupsafe.escape(meaning)) in html  # the rule in words, not only its id
    filtered = ui_client.get("/exceptions", params={"severity": "warning"},
                             cookies={"_token": airflow_auth()}).text
    assert 'id="open-errors">0<' in filtered


def test_exceptions_page_lists_what_was_resolved_recently(ui_client, airflow_auth,
                                                          finance_warehouse):
    with finance_warehouse.conn() as conn:
        key = conn.execute(
            "UPDATE ops.exceptions SET status = 'resolved', resolved_at = now(), "
            "resolved_by = 'psops_transform (transform run 99)' "
            "WHERE id = (SELECT min(id) FROM ops.exceptions WHERE status = 'open' "
            "AND severity = 'warning') RETURNING record_key").fetchone()[0]
    try:
        html = ui_client.get("/exceptions", cookies={"_token": airflow_auth()}).text
        resolved = html.split('id="resolved-rows"')[1]
        assert f"<code>{key}</code>" in resolved
        assert "psops_transform (transform run 99)" in resolved  # by whom
        assert 'id="resolved-recently">1<' in html
    finally:
        with finance_warehouse.conn() as conn:
            conn.execute("UPDATE ops.exceptions SET status = 'open', resolved_at = NULL, "
                         "resolved_by = NULL "
                         "WHERE record_key = %s AND status = 'resolved'", (key,))


def test_exceptions_page_lists_the_writes_given_up(ui_client, airflow_auth, finance_warehouse):
    """ops.dead_writes (outbox rows `dead` after PSOPS_OUTBOX_MAX_ATTEMPTS), read as the
    analyst; source text is escaped."""
    key = "erp.billing_line:milestone:ui-dead"
    with finance_warehouse.conn() as conn:
        conn.execute(
            """INSERT INTO ops.outbox (idempotency_key, kind, purpose, system, project_code,
                      payload, worth, currency, description, status, attempts, response_body)
               VALUES (%s, 'erp_billing_line', 'correction', 'erp', 'PRJ-00006', '{}', 1234.5,
                       'USD', 'create ERP billing line for <b>M-1</b>', 'dead', 5,
                       'ERP POST /billingMilestone answered 400: INVALID_KEY_OR_REF')""", (key,))
    try:
        html = ui_client.get("/exceptions", cookies={"_token": airflow_auth()}).text
        dead = html.split('id="dead-writes"')[1].split("</table>")[0]
        assert "create ERP billing line for &lt;b&gt;M-1&lt;/b&gt;" in dead
        assert "1,234.50 USD" in dead and ">5<" in dead and "INVALID_KEY_OR_REF" in dead
    finally:
        with finance_warehouse.conn() as conn:
            conn.execute("DELETE FROM ops.outbox WHERE idempotency_key = %s", (key,))
    html = ui_client.get("/exceptions", cookies={"_token": airflow_auth()}).text
    assert 'id="dead-writes"' not in html  # nothing given up: no section


def _utilization_from_sql(conn, region: str | None = None):
    """Per person over the 12 complete weeks, computed independently of the app."""
    monday = AS_OF - timedelta(days=AS_OF.weekday())
    first, last = monday - timedelta(weeks=12), monday - timedelta(weeks=1)
    rows = conn.execute(
        """SELECT u.employee_id, coalesce(r.region, e.location), sum(u.billable_hours),
                  sum(u.capacity_hours), max(u.target_utilization)
           FROM marts.utilization_weekly u JOIN curated.employees e USING (employee_id)
           LEFT JOIN reference.office_regions r ON r.office = e.location
           WHERE u.as_of = %s AND u.week_start BETWEEN %s AND %s
           GROUP BY u.employee_id, coalesce(r.region, e.location)""",
        (AS_OF, first, last)).fetchall()
    people = {}
    for emp, reg, billable, capacity, target in rows:
        if region and reg != region:
            continue
        util = billable / capacity if capacity else None
        people[emp] = (reg, util, target, billable, capacity)
    return people


def test_utilization_page_names_who_is_under_target(ui_client, airflow_auth, finance_warehouse):
    html = ui_client.get("/utilization", cookies={"_token": airflow_auth()}).text
    with finance_warehouse.conn() as conn:
        people = _utilization_from_sql(conn)
    under = {e for e, (_, u, t, _, _) in people.items() if u is not None and t is not None and u < t}
    assert under, "the sandbox has people under target"
    assert f'id="under-count">{len(under)}<' in html
    shown_under = set(re.findall(r'<tr data-employee="([^"]+)" class="under">', html))
    assert shown_under == under
    totals = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for reg, _, _, billable, capacity in people.values():
        totals[reg][0] += billable
        totals[reg][1] += capacity
    for reg, (billable, capacity) in totals.items():
        card = re.search(rf'data-region="{reg}">.*?class="big region-util">([^<]+)<', html, re.S)
        assert card and card.group(1) == charts.pct(billable / capacity, 1), reg
    assert html.count("<svg") >= len(people) + len(totals) + 2  # charts + a sparkline each


def test_utilization_filters_by_region_and_shows_timesheet_compliance(ui_client, airflow_auth,
                                                                       finance_warehouse):
    html = ui_client.get("/utilization", params={"region": "APAC", "as_of": AS_OF.isoformat()},
                         cookies={"_token": airflow_auth()}).text
    with finance_warehouse.conn() as conn:
        people = _utilization_from_sql(conn, "APAC")
        kpi = conn.execute("SELECT value FROM marts.process_kpis WHERE as_of = %s AND kpi = "
                           "'timesheet_on_time_rate'", (AS_OF,)).fetchone()[0]
    assert set(re.findall(r'<tr data-employee="([^"]+)"', html)) == set(people)
    assert f'id="on-time-rate">{charts.pct(kpi, 1)}<' in html
    assert 'id="compliance-chart"' in html


def test_a_later_date_reads_the_latest_marts_on_or_before_it(ui_client, airflow_auth):
    html = ui_client.get("/billing", params={"as_of": "2026-04-15"},
                         cookies={"_token": airflow_auth()}).text
    assert f"as of {AS_OF.isoformat()}" in html and "latest marts on or before 2026-04-15" in html
    early = ui_client.get("/billing", params={"as_of": "2020-01-01"},
                          cookies={"_token": airflow_auth()})
    assert early.status_code == 200 and "No marts yet for this date" in early.text
    assert ui_client.get("/billing", params={"as_of": "31/03/2026"},
                         cookies={"_token": airflow_auth()}).status_code == 400


# --------------------------------------------------------------------------
# Links to the runs, the task logs and the Data Docs
# --------------------------------------------------------------------------


def test_pages_link_to_the_transform_run_its_task_logs_and_the_data_docs(
        ui_client, airflow_auth, finance_warehouse):
    run = quote(finance_warehouse.transform_run_id, safe="")
    for page in ("/billing", "/utilization", "/exceptions"):
        html = ui_client.get(page, cookies={"_token": airflow_auth()}).text
        assert f'href="/dags/psops_transform/runs/{run}"' in html, page
        for task in ("quality_gates", "publish_marts", "summary"):
            assert f'href="/dags/psops_transform/runs/{run}/tasks/{task}"' in html
        assert 'href="/psops/data-docs/index.html"' in html


def test_data_docs_are_served_behind_the_login(ui_client, airflow_auth):
    token = airflow_auth()
    index = ui_client.get("/data-docs/index.html", cookies={"_token": token})
    assert index.status_code == 200 and "<html" in index.text.lower()
    assert ui_client.get("/data-docs/index.html").status_code == 401
    escape = ui_client.get("/data-docs/../../../../etc/passwd", cookies={"_token": token})
    assert escape.status_code == 404 and "root:" not in escape.text


def test_the_plugin_registers_the_app_and_a_navigation_entry():
    import psops_ui_plugin

    plugin = psops_ui_plugin.PsopsFinancePlugin
    assert [a["url_prefix"] for a in plugin.fastapi_apps] == ["/psops"]
    (view,) = plugin.external_views
    assert view["href"] == "/psops/billing" and view["url_route"] == "psops-finance"
    assert view["destination"] == "nav" and view["nav_top_level"]
