"""The soak's sandbox routes: POST /_sandbox/mutate, GET /_sandbox/truth, and the
`answer_latency_ms` fault (a write applied and logged, its answer held)."""

from __future__ import annotations

import threading

import pytest
import requests

from sandbox.server import start_sandbox
from sandbox.soak_data import HUGE_AMOUNT, SOAK_PREFIX, epoch_ms


@pytest.fixture(scope="module")
def own_sandbox():
    """A sandbox of its own: mutations would change the shared one's dataset."""
    handle = start_sandbox(seed=5, port=0, time_entries=2000)
    yield handle
    handle.stop()


def _control(handle, method: str, path: str, **kwargs):
    response = requests.request(method, handle.urls["psa"] + path, timeout=30, **kwargs)
    response.raise_for_status()
    return response.json()


def test_mutate_adds_updates_deletes_and_spoils_records(own_sandbox):
    before = _control(own_sandbox, "GET", "/_sandbox/truth")
    changed = _control(own_sandbox, "POST", "/_sandbox/mutate",
                       json={"seed": 1, "new": 1, "updated": 4, "deleted": 1, "bad": 3})
    after = _control(own_sandbox, "GET", "/_sandbox/truth")
    data = own_sandbox.dataset

    deal_id = changed["new"][0].rsplit("/", 1)[1]
    deal = data.crm["deals"].get(int(deal_id))
    assert deal["properties"]["dealname"].startswith(SOAK_PREFIX)
    assert deal["properties"]["dealstage"] == "closedwon"
    assert deal["properties"]["psa_project_id"] is None
    assert deal_id in after["versions"]["crm/deals"]
    assert deal_id not in before["versions"]["crm/deals"]

    expense_id = next(item for item in changed["deleted"] if item.startswith("psa/expenses"))
    gone = expense_id.rsplit("/", 1)[1]
    assert gone in before["versions"]["psa/expenses"]
    assert gone not in after["versions"]["psa/expenses"]
    assert data.psa["expenses"].get(int(gone)) is None

    assert len(changed["updated"]) == 4 and len(changed["bad"]) == 3
    bad = {item.rsplit("/", 1)[0]: int(item.rsplit("/", 1)[1]) for item in changed["bad"]}
    assert data.time_entries.get(bad["psa/time_entries"])["hours"] in (30.0, -4.0)
    company = data.crm["companies"].get(bad["crm/companies"])
    assert "\u0000" in company["properties"]["name"]
    assert data.psa["milestones"].get(bad["psa/milestones"])["amount"] == HUGE_AMOUNT


def test_truth_is_what_the_apis_serve(own_sandbox):
    truth = _control(own_sandbox, "GET", "/_sandbox/truth")
    creds = own_sandbox.credentials
    headers = {"Authorization": f"Bearer {creds.psa_token}",
               "PSA-Account-Id": creds.psa_account_id, "User-Agent": "psops-sandbox-tests"}
    url, served = own_sandbox.urls["psa"] + "/v2/time_entries?per_page=2000", {}
    while url:
        page = requests.get(url, headers=headers, timeout=30).json()
        served.update({str(e["id"]): epoch_ms(e["updated_at"]) for e in page["time_entries"]})
        url = page["links"]["next"]
    assert served == truth["versions"]["psa/time_entries"]
    assert len(truth["snapshots"]["hris/employees"]) == len(own_sandbox.dataset.employees)
    per_deal = truth["per_key"]["psa_projects_per_deal"]
    assert per_deal and set(per_deal.values()) == {1}


def test_mutate_rejects_bad_counts(own_sandbox):
    response = requests.post(own_sandbox.urls["psa"] + "/_sandbox/mutate",
                             json={"new": "many"}, timeout=30)
    assert response.status_code == 400


def test_answer_latency_holds_the_answer_after_the_write_is_logged(own_sandbox):
    own_sandbox.clear_writes()
    own_sandbox.set_faults(reset=True, answer_latency_ms=5000)
    creds = own_sandbox.credentials
    entry = int(own_sandbox.dataset.time_entries.ids()[0])
    answered = threading.Event()

    def patch() -> None:
        requests.patch(own_sandbox.urls["psa"] + f"/v2/time_entries/{entry}",
                       json={"notes": "held"}, timeout=30,
                       headers={"Authorization": f"Bearer {creds.psa_token}",
                                "PSA-Account-Id": creds.psa_account_id,
                                "User-Agent": "psops-sandbox-tests"})
        answered.set()

    writer = threading.Thread(target=patch)
    writer.start()
    try:
        while not own_sandbox.writes():
            assert not answered.is_set(), "answered before the write was logged"
        assert not answered.is_set()  # logged and applied, answer still held
        assert own_sandbox.dataset.time_entries.get(entry)["notes"] == "held"
    finally:
        writer.join()
        own_sandbox.set_faults(reset=True)
    assert answered.is_set()
