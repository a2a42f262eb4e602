"""Scale and reproducibility over HTTP: 1,000,000 time entries, identical bytes, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from sandbox.server import start_sandbox

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def million():
    handle = start_sandbox(seed=42, time_entries=1_000_000, port=0)
    yield handle
    handle.stop()


def _psa(handle, path, **params):
    c = handle.credentials
    r = requests.get(handle.urls["psa"] + path, params=params, timeout=30, headers={
        "Authorization": f"Bearer {c.psa_token}", "PSA-Account-Id": c.psa_account_id,
        "User-Agent": "scale-test"})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_million_entries_are_served_by_page(million):
    first = _psa(million, "/v2/time_entries", per_page=2000)
    assert first["total_entries"] == 1_000_000 and first["total_pages"] == 500
    last = _psa(million, "/v2/time_entries", per_page=2000, page=500)
    assert len(last["time_entries"]) == 2000 and last["links"]["next"] is None
    middle = _psa(million, "/v2/time_entries", per_page=2000, page=250)
    keys = [(e["updated_at"], e["id"]) for e in middle["time_entries"]]
    assert keys == sorted(keys)
    assert keys[0] > (first["time_entries"][-1]["updated_at"], first["time_entries"][-1]["id"])


def test_updated_since_is_a_binary_search(million):
    last = _psa(million, "/v2/time_entries", per_page=2000, page=500)
    pivot = last["time_entries"][1000]["updated_at"]
    started = time.perf_counter()
    since = _psa(million, "/v2/time_entries", per_page=2000, updated_since=pivot)
    assert time.perf_counter() - started < 1.0
    expected = sum(1 for e in last["time_entries"] if e["updated_at"] >= pivot)
    assert since["total_entries"] >= expected
    assert all(e["updated_at"] >= pivot for e in since["time_entries"])


def test_same_seed_gives_byte_identical_responses():
    bodies = []
    for _ in range(2):
        with start_sandbox(seed=9, scale=0.4, port=0) as sb:
            c = sb.credentials
            psa_headers = {"Authorization": f"Bearer {c.psa_token}",
                           "PSA-Account-Id": c.psa_account_id, "User-Agent": "t"}
            token = requests.post(sb.urls["erp"] + "/oauth2/token", data={
                "grant_type": "client_credentials", "client_id": c.erp_client_id,
                "client_secret": c.erp_client_secret}).json()["access_token"]
            got = [
                requests.get(sb.urls["psa"] + "/v2/time_entries?per_page=2000&page=3",
                             headers=psa_headers).content.replace(
                    str(sb.ports["psa"]).encode(), b"PORT"),
                requests.post(sb.urls["crm"] + "/crm/v3/objects/deals/search",
                              headers={"Authorization": f"Bearer {c.crm_token}"},
                              json={"limit": 100, "properties": ["dealname", "amount"]}).content,
                requests.get(sb.urls["erp"] + "/services/rest/record/v1/invoice?limit=1000",
                             headers={"Authorization": f"Bearer {token}"}).content.replace(
                    str(sb.ports["erp"]).encode(), b"PORT"),
                requests.post(f"{sb.urls['hris']}/api/gateway.php/{c.hris_company}/v1/reports/"
                              "custom?format=JSON", auth=(c.hris_api_key, "x"),
                              json={"fields": ["workEmail", "hireDate"]}).content,
            ]
            bodies.append(got)
    assert bodies[0] == bodies[1]


def test_cli_prints_ports_and_connections():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "--base-port", "0",
                             "--scale", "0.3"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        conns = {}
        for line in proc.stdout:
            if line.startswith("export AIRFLOW_CONN_"):
                name, _, value = line.strip()[len("export "):].partition("=")
                conns[name] = json.loads(value.strip("'"))
            if len(conns) == 5:
                break
        assert set(conns) == {"AIRFLOW_CONN_CRM_API", "AIRFLOW_CONN_PSA_API",
                              "AIRFLOW_CONN_ERP_API", "AIRFLOW_CONN_HRIS_API",
                              "AIRFLOW_CONN_ALERTS_WEBHOOK"}
        hris = conns["AIRFLOW_CONN_HRIS_API"]
        r = requests.get(f"http://{hris['host']}:{hris['port']}/api/gateway.php/"
                         f"{hris['extra']['company']}/v1/time_off/whos_out",
                         auth=(hris["login"], "x"), timeout=10)
        assert r.status_code == 200
        hook = conns["AIRFLOW_CONN_ALERTS_WEBHOOK"]
        r = requests.post(f"http://{hook['host']}:{hook['port']}{hook['extra']['path']}",
                          json={"text": "hi"}, timeout=10)
        assert r.text == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
