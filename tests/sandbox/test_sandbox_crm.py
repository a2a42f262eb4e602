"""CRM conformance: search paging, properties, filters, 10,000 cap, PATCH, auth."""

from __future__ import annotations

import pytest

from sandbox.server import start_sandbox

ASKED = ["dealname", "amount", "dealstage", "closedate", "contract_signed_date",
         "psa_project_id"]


def search_all(api, object_type: str, limit: int, filters=None, properties=ASKED) -> list:
    after, results = None, []
    while True:
        body = {"limit": limit, "properties": properties,
                "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]}
        if filters:
            body["filterGroups"] = [{"filters": filters}]
        if after:
            body["after"] = after
        r = api.crm("POST", f"/crm/v3/objects/{object_type}/search", json=body)
        assert r.status_code == 200, r.text
        page = r.json()
        results += page["results"]
        if "paging" not in page:
            return results
        after = page["paging"]["next"]["after"]


@pytest.mark.parametrize("limit", [100, 7])
def test_deals_page_to_the_end(sandbox, api, limit):
    results = search_all(api, "deals", limit)
    ids = [r["id"] for r in results]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(r["id"] for r in sandbox.dataset.crm["deals"].all())
    stamps = [r["properties"]["hs_lastmodifieddate"] for r in results]
    assert stamps == sorted(stamps)


def test_only_asked_properties_as_strings(api):
    result = search_all(api, "deals", 100)[0]
    assert set(result["properties"]) == set(ASKED) | {"hs_lastmodifieddate", "hs_object_id"}
    assert result["properties"]["hs_object_id"] == result["id"]
    for value in result["properties"].values():
        assert value is None or isinstance(value, str)
    assert set(result) == {"id", "properties", "createdAt", "updatedAt", "archived"}
    companies = search_all(api, "companies", 100, properties=["name", "erp_customer_id"])
    assert all(set(c["properties"]) == {"name", "erp_customer_id", "hs_lastmodifieddate",
                                        "hs_object_id"} for c in companies)
    assert any(c["properties"]["erp_customer_id"] is None for c in companies)


def test_last_page_has_no_paging(api):
    r = api.crm("POST", "/crm/v3/objects/deals/search", json={"limit": 100, "after": "0"})
    page = r.json()
    assert page["total"] <= 100 and "paging" not in page
    r = api.crm("POST", "/crm/v3/objects/deals/search", json={"limit": 10})
    assert r.json()["paging"]["next"]["after"] == "10"


def test_filter_gte_lastmodified_in_epoch_ms(sandbox, api):
    results = search_all(api, "deals", 100)
    pivot = results[len(results) // 2]
    from sandbox.isotime import parse_time
    text = pivot["properties"]["hs_lastmodifieddate"]
    ms = parse_time(text) * 1000 + int(text[20:23])
    later = search_all(api, "deals", 100, [{"propertyName": "hs_lastmodifieddate",
                                             "operator": "GTE", "value": str(ms)}])
    assert later[0]["id"] == pivot["id"]
    assert len(later) == len(results) - len(results) // 2
    won = search_all(api, "deals", 100, [{"propertyName": "dealstage", "operator": "EQ",
                                          "value": "closedwon"}])
    assert won and all(d["properties"]["dealstage"] == "closedwon" for d in won)


def test_limit_over_100_is_validation_error(api):
    r = api.crm("POST", "/crm/v3/objects/deals/search", json={"limit": 101})
    assert r.status_code == 400 and r.json()["category"] == "VALIDATION_ERROR"


def test_auth_failures(sandbox, http):
    url = sandbox.urls["crm"] + "/crm/v3/objects/deals/search"
    for headers in ({"Authorization": "Bearer nope"}, {}):
        r = http.post(url, json={}, headers=headers)
        assert r.status_code == 401
        assert r.json()["category"] == "INVALID_AUTHENTICATION"


def test_patch_deal_updates_and_bumps_lastmodified(sandbox, api):
    deal_id = sandbox.scenarios["deals"]["setup_valid_tm"]
    r = api.crm("PATCH", f"/crm/v3/objects/deals/{deal_id}",
                json={"properties": {"psa_project_id": 7777}})
    assert r.status_code == 200, r.text
    deal = r.json()
    assert deal["properties"]["psa_project_id"] == "7777"
    assert "dealname" in deal["properties"]  # the whole object
    newest = search_all(api, "deals", 100, [{"propertyName": "hs_lastmodifieddate",
                                             "operator": "GTE",
                                             "value": deal["properties"]["hs_lastmodifieddate"]}])
    assert [d["id"] for d in newest] == [deal_id]
    assert newest[0]["properties"]["psa_project_id"] == "7777"
    api.crm("PATCH", f"/crm/v3/objects/deals/{deal_id}",
            json={"properties": {"psa_project_id": None}})
    assert api.crm("PATCH", "/crm/v3/objects/deals/1",
                   json={"properties": {"dealname": "x"}}).status_code == 404
    r = api.crm("PATCH", f"/crm/v3/objects/deals/{deal_id}",
                json={"properties": {"no_such_property": "x"}})
    assert r.status_code == 400 and r.json()["category"] == "VALIDATION_ERROR"


@pytest.fixture(scope="module")
def big_crm():
    handle = start_sandbox(seed=7, scale=0.3, crm_deals=10_350, port=0)
    yield handle
    handle.stop()


def test_ten_thousand_cap_and_restart_by_lastmodified(big_crm, http):
    from tests.sandbox.conftest import Clients

    api = Clients(big_crm, http)
    r = api.crm("POST", "/crm/v3/objects/deals/search", json={"limit": 100, "after": "9900"})
    page = r.json()
    assert page["total"] == 10_350 and page["paging"]["next"]["after"] == "10000"
    r = api.crm("POST", "/crm/v3/objects/deals/search", json={"limit": 100, "after": "10000"})
    assert r.status_code == 400
    assert r.json()["status"] == "error" and r.json()["category"] == "VALIDATION_ERROR"
    # restart from the last hs_lastmodifieddate seen, as a full sync must
    seen: dict[str, dict] = {}
    watermark = None
    while True:
        filters = [] if watermark is None else [
            {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": watermark}]
        after, got_more = None, False
        while True:
            body = {"limit": 100, "properties": ["dealname"],
                    "filterGroups": [{"filters": filters}] if filters else [],
                    "sorts": [{"propertyName": "hs_lastmodifieddate",
                               "direction": "ASCENDING"}]}
            if after:
                body["after"] = after
            r = api.crm("POST", "/crm/v3/objects/deals/search", json=body)
            if r.status_code == 400:
                break
            page = r.json()
            for d in page["results"]:
                got_more |= d["id"] not in seen
                seen[d["id"]] = d
            if "paging" not in page:
                break
            after = page["paging"]["next"]["after"]
        last = max(d["properties"]["hs_lastmodifieddate"] for d in seen.values())
        if not got_more or r.status_code != 400:
            break
        watermark = last
    assert len(seen) == 10_350
