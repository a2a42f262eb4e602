"""ERP conformance: OAuth2 client credentials, limit/offset paging, q, eid:, writes."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

BASE = "/services/rest/record/v1"
TYPES = ("customer", "job", "billingMilestone", "customrecord_rate_card", "invoice",
         "purchaseOrder")


def fetch_all(api, record_type: str, limit: int, token: str, q: str | None = None) -> list:
    url = f"{BASE}/{record_type}"
    params = {"limit": limit, **({"q": q} if q else {})}
    items = []
    while url:
        r = api.erp("GET", url, token=token, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        assert body["count"] == len(body["items"])
        links = {link["rel"]: link["href"] for link in body["links"]}
        assert body["hasMore"] == ("next" in links)
        url, params = links.get("next"), None
    return items


def test_token_endpoint(sandbox, api, http):
    url = sandbox.urls["erp"] + "/oauth2/token"
    r = http.post(url, data={"grant_type": "client_credentials",
                             "client_id": sandbox.credentials.erp_client_id,
                             "client_secret": sandbox.credentials.erp_client_secret})
    body = r.json()
    assert r.status_code == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 3600
    bad = http.post(url, data={"grant_type": "client_credentials", "client_id": "x",
                               "client_secret": "y"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    wrong_grant = http.post(url, data={"grant_type": "password"})
    assert wrong_grant.status_code == 400


@pytest.mark.parametrize("record_type", TYPES)
def test_every_record_type_pages_completely(sandbox, api, record_type):
    token = api.erp_token()
    expected = sorted(r["id"] for r in sandbox.dataset.erp[record_type].all())
    for limit in (1000, 7):
        items = fetch_all(api, record_type, limit, token)
        ids = [i["id"] for i in items]
        assert sorted(ids) == expected and len(ids) == len(set(ids))
        keys = [(i["lastModifiedDate"], int(i["id"])) for i in items]
        assert keys == sorted(keys)


def test_envelope(api, sandbox):
    token = api.erp_token()
    r = api.erp("GET", f"{BASE}/invoice", token=token, params={"limit": 10, "offset": 20})
    body = r.json()
    total = len(sandbox.dataset.erp["invoice"])
    assert body["totalResults"] == total and body["offset"] == 20 and body["count"] == 10
    links = {link["rel"]: link["href"] for link in body["links"]}
    assert links["next"].startswith("http://") and "offset=30" in links["next"]
    assert "self" in links
    for params in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"q": "foo"}):
        assert api.erp("GET", f"{BASE}/invoice", token=token, params=params).status_code == 400


def test_q_last_modified_on_or_after(api):
    token = api.erp_token()
    everything = fetch_all(api, "invoice", 1000, token)
    pivot = everything[len(everything) // 3]["lastModifiedDate"]
    later = fetch_all(api, "invoice", 50, token, f'lastModifiedDate ON_OR_AFTER "{pivot}"')
    assert later and all(i["lastModifiedDate"] >= pivot for i in later)
    assert len(later) == sum(1 for i in everything if i["lastModifiedDate"] >= pivot)


def test_auth_failures(sandbox, api, http):
    url = sandbox.urls["erp"] + f"{BASE}/job"
    assert http.get(url).status_code == 401
    r = http.get(url, headers={"Authorization": "Bearer forged"})
    assert r.status_code == 401 and r.json()["o:errorDetails"][0]["o:errorCode"] == "INVALID_LOGIN"


def test_expired_token_is_401(sandbox, api):
    sandbox.set_faults(token_lifetime=1)
    token = api.erp_token()
    assert api.erp("GET", f"{BASE}/job", token=token).status_code == 200
    time.sleep(1.2)
    assert api.erp("GET", f"{BASE}/job", token=token).status_code == 401
    assert api.erp("GET", f"{BASE}/job").status_code == 200  # a fresh token works


def test_external_id_lookup(sandbox, api):
    token = api.erp_token()
    job = sandbox.dataset.erp["job"].all()[3]
    r = api.erp("GET", f"{BASE}/job/eid:{job['externalId']}", token=token)
    assert r.status_code == 200 and r.json()["id"] == job["id"]
    r = api.erp("GET", f"{BASE}/job/eid:does-not-exist", token=token)
    assert r.status_code == 404 and r.json()["o:errorDetails"][0]["o:errorCode"] == (
        "NONEXISTENT_ID")
    r = api.erp("PATCH", f"{BASE}/job/eid:does-not-exist", token=token, json={"status": "x"})
    assert r.status_code == 404


def test_create_job_and_billing_line_then_read(sandbox, api):
    token = api.erp_token()
    body = {"entityId": "PRJ-90010", "companyName": "New job", "customer": {"id": "1001"},
            "status": "active", "externalId": "7999", "startDate": "2026-04-01",
            "subsidiary": {"id": "1"}}
    first = api.erp("POST", f"{BASE}/job", token=token, json=body)
    second = api.erp("POST", f"{BASE}/job", token=token, json=body)
    assert first.status_code == second.status_code == 204 and first.content == b""
    job_id = first.headers["Location"].rsplit("/", 1)[1]
    assert second.headers["Location"].rsplit("/", 1)[1] == str(int(job_id) + 1)
    job = api.erp("GET", first.headers["Location"], token=token).json()
    assert job["entityId"] == "PRJ-90010" and job["customer"]["id"] == "1001"
    line = api.erp("POST", f"{BASE}/billingMilestone", token=token,
                   json={"job": {"id": job_id}, "externalId": "8999", "amount": 5000.0,
                         "billDate": "2026-05-01"})
    assert line.status_code == 204
    got = api.erp("GET", f"{BASE}/billingMilestone/eid:8999", token=token).json()
    assert got["job"] == {"id": job_id, "refName": "PRJ-90010"} and got["amount"] == 5000.0
    bad = api.erp("POST", f"{BASE}/job", token=token, json={"entityId": "PRJ-1"})
    assert bad.status_code == 400


def test_patch_by_id_and_eid_bumps_last_modified(sandbox, api):
    token = api.erp_token()
    job = sandbox.dataset.erp["job"].all()[0]
    r = api.erp("PATCH", f"{BASE}/job/{job['id']}", token=token, json={"status": "inactive"})
    assert r.status_code == 204
    after = api.erp("GET", f"{BASE}/job/eid:{job['externalId']}", token=token).json()
    assert after["status"] == "inactive" and after["lastModifiedDate"] > job["lastModifiedDate"]
    newest = fetch_all(api, "job", 1000, token,
                       f'lastModifiedDate ON_OR_AFTER "{after["lastModifiedDate"]}"')
    assert [j["id"] for j in newest] == [job["id"]]
    r = api.erp("PATCH", f"{BASE}/job/eid:{job['externalId']}", token=token,
                json={"status": job["status"]})
    assert r.status_code == 204


def test_more_than_two_in_flight_is_429_without_retry_after(sandbox, api):
    token = api.erp_token()
    sandbox.set_faults(natural_limits=True, latency_ms=300)
    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(
            lambda _: api.erp("GET", f"{BASE}/customer", token=token), range(5)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 2 and 429 in statuses
    throttled = next(r for r in responses if r.status_code == 429)
    assert "Retry-After" not in throttled.headers
