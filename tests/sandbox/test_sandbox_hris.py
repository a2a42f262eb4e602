"""HRIS conformance: Basic auth, one-shot custom report, time off, who's out."""

from __future__ import annotations

FIELDS = ["displayName", "workEmail", "jobTitle", "department", "location", "status",
          "hireDate", "terminationDate", "customStandardHoursPerWeek", "customCostRate",
          "customTargetUtilization"]


def report(api, fields=FIELDS, **kw):
    return api.hris("POST", "/reports/custom", params={"format": "JSON"},
                    json={"fields": fields}, **kw)


def test_custom_report_has_everyone_as_strings_or_null(sandbox, api):
    r = report(api)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [f["id"] for f in body["fields"]] == FIELDS
    employees = body["employees"]
    assert len(employees) == len(sandbox.dataset.employees) == 150
    for e in employees:
        assert set(e) == {"id", *FIELDS}
        assert all(v is None or isinstance(v, str) for v in e.values())
    active = [e for e in employees if e["status"] == "Active"]
    assert all(e["terminationDate"] == "0000-00-00" for e in active)
    inactive = [e for e in employees if e["status"] == "Inactive"]
    assert inactive and all(e["terminationDate"] != "0000-00-00" for e in inactive)
    hours = {e["customStandardHoursPerWeek"] for e in employees}
    assert {None, "0", "40", "20"} <= hours


def test_report_asks_only_for_what_it_names(api):
    body = report(api, ["workEmail"]).json()
    assert set(body["employees"][0]) == {"id", "workEmail"}


def test_report_errors(api):
    assert report(api, ["noSuchField"]).status_code == 400
    r = api.hris("POST", "/reports/custom", params={"format": "XML"}, json={"fields": FIELDS})
    assert r.status_code == 400


def test_auth_failures(sandbox, api, http):
    r = report(api, key="wrong-key")
    assert r.status_code == 401 and r.headers.get("X-BambooHR-Error-Message")
    url = f"{sandbox.urls['hris']}/api/gateway.php/{sandbox.credentials.hris_company}/v1" \
          "/time_off/whos_out"
    assert http.get(url).status_code == 401
    other = api.hris("GET", "/time_off/whos_out")
    assert other.status_code == 200
    wrong_company = http.get(url.replace(sandbox.credentials.hris_company, "acme"),
                             headers=api.hris("GET", "/time_off/whos_out").request.headers)
    assert wrong_company.status_code == 404


def test_time_off_requests_overlapping_window_returned_whole(sandbox, api):
    everything = api.hris("GET", "/time_off/requests",
                          params={"start": "2020-01-01", "end": "2030-01-01"}).json()
    long = next(r for r in everything if r["status"]["status"] == "approved"
                and r["start"] < r["end"])
    day = long["end"]
    r = api.hris("GET", "/time_off/requests", params={"start": day, "end": day,
                                                     "status": "approved"})
    got = next(x for x in r.json() if x["id"] == long["id"])
    assert got["start"] == long["start"] and got["dates"] == long["dates"]
    assert all(isinstance(v, str) for v in got["dates"].values())
    assert got["amount"]["unit"] in ("days", "hours")
    approved = api.hris("GET", "/time_off/requests", params={
        "start": "2020-01-01", "end": "2030-01-01", "status": "approved"}).json()
    assert approved and all(x["status"]["status"] == "approved" for x in approved)
    assert len(approved) < len(everything)
    assert {x["amount"]["unit"] for x in approved} == {"days", "hours"}
    missing = api.hris("GET", "/time_off/requests")
    assert missing.status_code == 400


def test_whos_out_has_holidays_and_time_off(api):
    entries = api.hris("GET", "/time_off/whos_out",
                       params={"start": "2025-04-01", "end": "2026-03-31"}).json()
    holidays = [e for e in entries if e["type"] == "holiday"]
    assert {"Christmas Day", "Good Friday"} <= {h["name"] for h in holidays}
    assert all(set(h) == {"id", "type", "name", "start", "end"} for h in holidays)
    assert any(e["type"] == "timeOff" for e in entries)
