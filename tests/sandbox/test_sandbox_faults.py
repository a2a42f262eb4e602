"""Fault injection: each kind, each system's throttling style, counting, determinism."""

from __future__ import annotations

import time

import pytest
import requests

BASE = "/services/rest/record/v1"


def psa_get(api, path="/v2/projects"):
    return api.psa("GET", path, params={"per_page": 1})


def test_error_rate_gives_5xx_and_is_counted(sandbox, api):
    sandbox.reset_stats()
    sandbox.set_faults(error_rate=1.0, systems=["psa"])
    statuses = [psa_get(api).status_code for _ in range(6)]
    assert all(s in (500, 502, 503, 504) for s in statuses)
    assert api.crm("POST", "/crm/v3/objects/deals/search", json={}).status_code == 200
    stats = sandbox.stats()
    assert stats["psa"]["faults"]["error"] == 6 and stats["psa"]["requests"] == 6
    assert stats["crm"]["faults"] == {} and stats["crm"]["responses"] == {"200": 1}


def test_fault_sequence_is_deterministic_for_a_seed(sandbox, api):
    runs = []
    for _ in range(2):
        sandbox.set_faults(reset=True, seed=5, error_rate=0.5, systems=["psa"])
        runs.append([psa_get(api).status_code for _ in range(12)])
    assert runs[0] == runs[1] and 200 in runs[0] and any(s >= 500 for s in runs[0])


def test_throttling_in_each_systems_style(sandbox, api, http):
    sandbox.set_faults(throttle_rate=1.0, retry_after=3)
    crm = api.crm("POST", "/crm/v3/objects/deals/search", json={})
    assert crm.status_code == 429 and crm.headers["Retry-After"] == "3"
    assert crm.json()["errorType"] == "RATE_LIMIT" and crm.json()["policyName"] == "SECONDLY"
    psa = psa_get(api)
    assert psa.status_code == 429 and psa.headers["Retry-After"] == "3"
    erp = http.post(sandbox.urls["erp"] + "/oauth2/token", data={"grant_type": "x"})
    assert erp.status_code == 429 and "Retry-After" not in erp.headers
    hris = api.hris("GET", "/time_off/whos_out")
    assert hris.status_code == 503 and hris.headers["Retry-After"] == "3"
    hook = http.post(sandbox.urls["webhook"] + sandbox.credentials.webhook_path,
                     json={"text": "x"})
    assert hook.status_code == 429 and hook.headers["Retry-After"] == "3"
    sandbox.set_faults(hris_throttle_status=429)
    assert api.hris("GET", "/time_off/whos_out").status_code == 429


def test_scripted_answers_then_normal(sandbox, api):
    sandbox.set_faults(script={"psa": [503, 429, 500]})
    assert [psa_get(api).status_code for _ in range(4)] == [503, 429, 500, 200]


def test_latency(sandbox, api):
    sandbox.set_faults(latency_ms=250, systems=["psa"])
    started = time.perf_counter()
    assert psa_get(api).status_code == 200
    assert time.perf_counter() - started >= 0.25
    assert sandbox.stats()["psa"]["faults"]["latency"] >= 1


def _project_body(code: str, deal: str) -> dict:
    return {"name": "Lost answer", "code": code, "crm_deal_id": deal, "crm_company_id": "5001",
            "billing_type": "time_and_materials", "starts_on": "2026-04-01",
            "ends_on": "2026-06-30", "fee": None, "currency": "USD", "region": "NA"}


def _projects_for(api, deal: str) -> list:
    return api.psa("GET", "/v2/projects", params={"crm_deal_id": deal}).json()["projects"]


def test_lost_response_504_after_the_write_happened(sandbox, api):
    sandbox.set_faults(lost_response_rate=1.0, lost_response_mode="504", systems=["psa"])
    r = api.psa("POST", "/v2/projects", json=_project_body("PRJ-91001", "lost-504"))
    assert r.status_code == 504
    sandbox.set_faults(reset=True)
    assert len(_projects_for(api, "lost-504")) == 1
    logged = sandbox.writes("psa")[-1]
    assert logged["status"] == 201 and logged["lost"] == "504"
    assert logged["body"]["code"] == "PRJ-91001" and logged["response"]["code"] == "PRJ-91001"


def test_lost_response_dropped_connection_after_the_write(sandbox, api):
    sandbox.set_faults(lost_response_rate=1.0, lost_response_mode="drop", systems=["psa"])
    with pytest.raises(requests.exceptions.RequestException):
        api.psa("POST", "/v2/projects", json=_project_body("PRJ-91002", "lost-drop"))
    sandbox.set_faults(reset=True)
    assert len(_projects_for(api, "lost-drop")) == 1
    assert sandbox.stats()["psa"]["faults"]["lost_response"] >= 1


def test_erp_lost_create_still_creates(sandbox, api):
    token = api.erp_token()
    sandbox.set_faults(lost_response_rate=1.0, systems=["erp"])
    r = api.erp("POST", f"{BASE}/job", token=token, json={
        "entityId": "PRJ-91003", "companyName": "x", "customer": {"id": "1001"},
        "status": "active", "externalId": "lost-erp", "startDate": "2026-04-01"})
    assert r.status_code == 504
    sandbox.set_faults(reset=True)
    assert api.erp("GET", f"{BASE}/job/eid:lost-erp", token=token).status_code == 200


def test_psa_natural_limit_per_token(sandbox, api):
    sandbox.set_faults(natural_limits=True, limits={"psa": [3, 15]})
    statuses = [psa_get(api).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    r = psa_get(api)
    assert 1 <= int(r.headers["Retry-After"]) <= 15
    assert sandbox.stats()["psa"]["faults"]["natural_limit"] >= 2


def test_crm_natural_limit(sandbox, api):
    sandbox.set_faults(natural_limits=True, limits={"crm": [2, 10]})
    statuses = [api.crm("POST", "/crm/v3/objects/deals/search", json={}).status_code
                for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_data_anomalies_in_time_entries(sandbox, api):
    sandbox.set_faults(anomaly_rate=0.02, seed=3)
    sandbox.reset_stats()

    def fetch():
        url, entries, page_of = "/v2/time_entries?per_page=2000", [], []
        while url:
            body = api.psa("GET", url).json()
            entries += body["time_entries"]
            page_of += [body["page"]] * len(body["time_entries"])
            url = body["links"]["next"]
        return entries

    first, second = fetch(), fetch()
    assert first == second  # deterministic
    assert any(e["hours"] == 0 for e in first) and any(e["hours"] == 30 for e in first)
    assert any(e["project"]["code"] == "PRJ-99999" for e in first)
    assert any(e["user"]["email"].endswith("@partner.example") for e in first)
    assert any(e["spent_date"] > "2026-03-31" for e in first)
    ids = [e["id"] for e in first]
    assert len(ids) > len(set(ids))  # duplicate copies across pages
    assert sandbox.stats()["psa"]["faults"]["anomaly"] > 0


def test_fault_control_over_http(sandbox, http):
    url = sandbox.urls["hris"] + "/_sandbox/faults"
    r = http.post(url, json={"error_rate": 1.0, "systems": ["hris"]})
    assert r.status_code == 200 and r.json()["error_rate"] == 1.0
    assert http.get(sandbox.urls["crm"] + "/_sandbox/faults").json()["systems"] == ["hris"]
    assert http.post(url, json={"no_such_knob": 1}).status_code == 400
    stats = http.get(sandbox.urls["psa"] + "/_sandbox/stats").json()
    assert set(stats) == {"crm", "psa", "erp", "hris", "webhook"}
    assert http.post(url, json={"reset": True}).json()["error_rate"] == 0.0
