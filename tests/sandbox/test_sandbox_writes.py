"""The write log and the sandbox-only touch endpoint."""

from __future__ import annotations

BASE = "/services/rest/record/v1"


def test_writes_are_logged_for_every_system(sandbox, api, http):
    sandbox.clear_writes()
    deal = sandbox.scenarios["deals"]["setup_valid_ff"]
    api.crm("PATCH", f"/crm/v3/objects/deals/{deal}", json={"properties": {"sow_reference": "S"}})
    entry = api.psa("GET", "/v2/time_entries", params={"per_page": 1}).json()["time_entries"][0]
    api.psa("PATCH", f"/v2/time_entries/{entry['id']}", json={"status": "approved"})
    token = api.erp_token()
    created = api.erp("POST", f"{BASE}/billingMilestone", token=token, json={
        "job": {"id": "2002"}, "externalId": "log-test", "amount": 1.0, "billDate": "2026-04-01"})
    api.erp("PATCH", f"{BASE}/job/eid:does-not-exist", token=token, json={"status": "x"})
    log = http.get(sandbox.urls["crm"] + "/_sandbox/writes").json()
    assert [(w["system"], w["method"], w["status"]) for w in log] == [
        ("crm", "PATCH", 200), ("psa", "PATCH", 200), ("erp", "POST", 204),
        ("erp", "PATCH", 404)]
    assert log[0]["body"] == {"properties": {"sow_reference": "S"}}
    assert log[2]["location"] == created.headers["Location"]
    assert all(w["time"].endswith("Z") and w["path"].startswith("/") for w in log)
    only_erp = http.get(sandbox.urls["psa"] + "/_sandbox/writes?system=erp").json()
    assert [w["method"] for w in only_erp] == ["POST", "PATCH"]


def test_touch_time_entries_makes_them_visible_to_incremental_reads(sandbox, api, http):
    result = http.post(sandbox.urls["psa"] + "/_sandbox/touch",
                       json={"system": "psa", "resource": "time_entries", "count": 5}).json()
    assert len(result["touched"]) == 5
    page = api.psa("GET", "/v2/time_entries",
                   params={"updated_since": result["updated_at"], "per_page": 100}).json()
    assert sorted(e["id"] for e in page["time_entries"]) == sorted(result["touched"])


def test_touch_crm_and_erp(sandbox, api):
    result = sandbox.touch("crm", "deals", count=3)
    r = api.crm("POST", "/crm/v3/objects/deals/search", json={
        "limit": 100, "filterGroups": [{"filters": [{
            "propertyName": "hs_lastmodifieddate", "operator": "GTE",
            "value": result["updated_at"]}]}]})
    assert sorted(d["id"] for d in r.json()["results"]) == sorted(result["touched"])
    result = sandbox.touch("erp", "invoice", ids=["6001"], changes={"status": "paid"})
    body = api.erp("GET", f"{BASE}/invoice", params={
        "q": f'lastModifiedDate ON_OR_AFTER "{result["updated_at"]}"'}).json()
    assert [i["id"] for i in body["items"]] == ["6001"] and body["items"][0]["status"] == "paid"


def test_touch_during_paging_moves_records_to_the_end(sandbox, api):
    first = api.psa("GET", "/v2/expenses", params={"per_page": 50}).json()
    moved = [e["id"] for e in first["expenses"][:3]]
    sandbox.touch("psa", "expenses", ids=moved)
    last = api.psa("GET", first["links"]["last"]).json()
    assert last["total_entries"] == first["total_entries"]
    assert [e["id"] for e in last["expenses"][-3:]] == sorted(moved)


def test_bad_touch_is_400(sandbox, http):
    r = http.post(sandbox.urls["psa"] + "/_sandbox/touch", json={"system": "psa",
                                                                  "resource": "nope"})
    assert r.status_code == 400
