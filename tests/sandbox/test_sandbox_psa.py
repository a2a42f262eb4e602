"""PSA conformance over real HTTP: paging, filters, auth quirks, writes."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

RESOURCES = ("projects", "milestones", "assignments", "time_entries", "expenses",
             "change_requests")


def fetch_all(api, resource: str, per_page: int, **params) -> list[dict]:
    url = f"/v2/{resource}"
    query = {"per_page": per_page, **params}
    records = []
    while url:
        r = api.psa("GET", url, params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        records += body[resource]
        url, query = body["links"]["next"], None
    return records


def expected_ids(sandbox, resource: str) -> list[int]:
    if resource == "time_entries":
        return sorted(sandbox.dataset.time_entries.ids().tolist())
    return sorted(r["id"] for r in sandbox.dataset.psa[resource].all())


@pytest.mark.parametrize("resource", RESOURCES)
def test_every_resource_pages_to_the_end_without_loss_or_duplicates(sandbox, api, resource):
    for per_page in (100, 37) if resource != "time_entries" else (2000, 1999):
        records = fetch_all(api, resource, per_page)
        ids = [r["id"] for r in records]
        assert len(ids) == len(set(ids))
        assert sorted(ids) == expected_ids(sandbox, resource)
        keys = [(r["updated_at"], r["id"]) for r in records]
        assert keys == sorted(keys)
        assert all(isinstance(i, int) for i in ids)


def test_page_envelope_and_absolute_links(sandbox, api):
    r = api.psa("GET", "/v2/milestones", params={"per_page": 50, "page": 2})
    body = r.json()
    total = len(sandbox.dataset.psa["milestones"])
    assert body["page"] == 2 and body["per_page"] == 50
    assert body["total_entries"] == total
    assert body["total_pages"] == -(-total // 50)
    assert body["previous_page"] == 1 and body["next_page"] == 3
    for name in ("first", "next", "previous", "last"):
        link = urlparse(body["links"][name])
        assert link.scheme == "http" and link.netloc == urlparse(sandbox.urls["psa"]).netloc
    assert "per_page=50" in body["links"]["next"] and "page=3" in body["links"]["next"]
    last = api.psa("GET", body["links"]["last"]).json()
    assert last["links"]["next"] is None and last["next_page"] is None


def test_records_have_nested_refs(api):
    entry = api.psa("GET", "/v2/time_entries", params={"per_page": 1}).json()["time_entries"][0]
    assert set(entry["user"]) == {"id", "name", "email"}
    assert set(entry["project"]) == {"id", "code", "name"}
    assert set(entry["task"]) == {"id", "name"}
    milestone = api.psa("GET", "/v2/milestones", params={"per_page": 1}).json()["milestones"][0]
    assert set(milestone["project"]) == {"id", "code"}


def test_updated_since_returns_records_at_or_after(sandbox, api):
    all_entries = fetch_all(api, "time_entries", 2000)
    pivot = all_entries[len(all_entries) // 2]["updated_at"]
    since = fetch_all(api, "time_entries", 2000, updated_since=pivot)
    assert since and all(r["updated_at"] >= pivot for r in since)
    assert len(since) == sum(1 for r in all_entries if r["updated_at"] >= pivot)
    expenses = fetch_all(api, "expenses", 500, updated_since=pivot)
    assert all(r["updated_at"] >= pivot for r in expenses)


def test_projects_filter_by_crm_deal_id(sandbox, api):
    project = sandbox.dataset.psa["projects"].all()[5]
    found = fetch_all(api, "projects", 100, crm_deal_id=project["crm_deal_id"])
    assert [p["id"] for p in found] == [project["id"]]
    assert fetch_all(api, "projects", 100, crm_deal_id="no-such-deal") == []


def test_missing_user_agent_is_400(sandbox, api, raw):
    host, port = "127.0.0.1", sandbox.ports["psa"]
    status, body = raw(host, port, "/v2/projects", api.psa_headers())
    assert status == 400, body
    status, _ = raw(host, port, "/v2/projects", {**api.psa_headers(), "User-Agent": "t"})
    assert status == 200


def test_auth_failures_are_401(sandbox, http):
    url = sandbox.urls["psa"] + "/v2/projects"
    good = sandbox.credentials
    cases = [
        {"Authorization": "Bearer wrong", "PSA-Account-Id": good.psa_account_id},
        {"Authorization": f"Bearer {good.psa_token}"},
        {"Authorization": f"Bearer {good.psa_token}", "PSA-Account-Id": "999"},
        {"PSA-Account-Id": good.psa_account_id},
    ]
    for headers in cases:
        r = http.get(url, headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"] == "invalid_token"


@pytest.mark.parametrize("params", [{"per_page": 0}, {"per_page": 2001}, {"page": 0},
                                    {"updated_since": "yesterday"}])
def test_bad_list_parameters_are_422(api, params):
    r = api.psa("GET", "/v2/time_entries", params=params)
    assert r.status_code == 422 and r.json()["message"]


def test_post_project_is_not_deduplicated(sandbox, api):
    body = {"name": "Setup test", "code": "PRJ-90001", "crm_deal_id": "9052",
            "crm_company_id": "5001", "billing_type": "fixed_fee", "starts_on": "2026-04-01",
            "ends_on": "2026-09-30", "fee": 120000.0, "currency": "USD", "region": "NA"}
    first = api.psa("POST", "/v2/projects", json=body)
    second = api.psa("POST", "/v2/projects", json={**body, "code": "PRJ-90002"})
    assert first.status_code == second.status_code == 201
    a, b = first.json(), second.json()
    assert isinstance(a["id"], int) and b["id"] == a["id"] + 1
    assert a["code"] == "PRJ-90001" and a["status"] == "active" and a["fee"] == 120000.0
    found = fetch_all(api, "projects", 100, crm_deal_id="9052")
    assert {p["id"] for p in found} == {a["id"], b["id"]}
    newest = fetch_all(api, "projects", 100, updated_since=a["updated_at"])
    assert {a["id"], b["id"]} <= {p["id"] for p in newest}


def test_post_project_validates(api):
    r = api.psa("POST", "/v2/projects", json={"name": "x", "code": "P-1",
                                                "billing_type": "fixed_fee"})
    assert r.status_code == 422
    r = api.psa("POST", "/v2/projects", json={"name": "x"})
    assert r.status_code == 422


def test_patch_time_entry_changes_later_reads(sandbox, api):
    entry = api.psa("GET", "/v2/time_entries", params={"per_page": 1}).json()["time_entries"][0]
    r = api.psa("PATCH", f"/v2/time_entries/{entry['id']}", json={"hours": 6.5,
                                                                   "notes": "fixed"})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["hours"] == 6.5 and changed["updated_at"] > entry["updated_at"]
    assert api.psa("GET", f"/v2/time_entries/{entry['id']}").json()["notes"] == "fixed"
    newer = fetch_all(api, "time_entries", 2000, updated_since=changed["updated_at"])
    assert [e["id"] for e in newer] == [entry["id"]]
    assert sorted(e["id"] for e in fetch_all(api, "time_entries", 2000)) == expected_ids(
        sandbox, "time_entries")


def test_patch_project_and_errors(api):
    project = api.psa("GET", "/v2/projects", params={"per_page": 1}).json()["projects"][0]
    r = api.psa("PATCH", f"/v2/projects/{project['id']}", json={"status": "on_hold"})
    assert r.status_code == 200 and r.json()["status"] == "on_hold"
    assert api.psa("PATCH", "/v2/projects/1", json={"status": "closed"}).status_code == 404
    r = api.psa("PATCH", f"/v2/projects/{project['id']}", json={"id": 5})
    assert r.status_code == 422
    api.psa("PATCH", f"/v2/projects/{project['id']}", json={"status": project["status"]})
