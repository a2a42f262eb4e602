"""Sandbox fixtures: one running sandbox per session (free loopback ports)."""

from __future__ import annotations

import base64
import http.client as http_client

import pytest
import requests

from sandbox.server import SandboxHandle, start_sandbox


@pytest.fixture(scope="session")
def sandbox() -> SandboxHandle:
    handle = start_sandbox(seed=42, port=0)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def _default_faults(request):
    """Every test starts and ends with the default (no) faults on the shared sandbox."""
    if "sandbox" in request.fixturenames:
        handle = request.getfixturevalue("sandbox")
        handle.set_faults(reset=True)
        yield
        handle.set_faults(reset=True)
    else:
        yield


@pytest.fixture
def http() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = "psops-sandbox-tests"
    yield session
    session.close()


class Clients:
    """Authenticated request helpers for each system of one sandbox."""

    def __init__(self, sb: SandboxHandle, session: requests.Session) -> None:
        self.sb, self.s, self.c = sb, session, sb.credentials

    def crm(self, method: str, path: str, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.c.crm_token}", **kw.pop("headers", {})}
        return self.s.request(method, self.sb.urls["crm"] + path, headers=headers, **kw)

    def psa_headers(self) -> dict:
        return {"Authorization": f"Bearer {self.c.psa_token}",
                "PSA-Account-Id": self.c.psa_account_id}

    def psa(self, method: str, path: str, **kw) -> requests.Response:
        url = path if path.startswith("http") else self.sb.urls["psa"] + path
        return self.s.request(method, url, headers={**self.psa_headers(),
                                                    **kw.pop("headers", {})}, **kw)

    def erp_token(self) -> str:
        r = self.s.post(self.sb.urls["erp"] + "/oauth2/token",
                        data={"grant_type": "client_credentials",
                              "client_id": self.c.erp_client_id,
                              "client_secret": self.c.erp_client_secret})
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def erp(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        url = path if path.startswith("http") else self.sb.urls["erp"] + path
        headers = {"Authorization": f"Bearer {token or self.erp_token()}",
                   **kw.pop("headers", {})}
        return self.s.request(method, url, headers=headers, **kw)

    def hris(self, method: str, path: str, key: str | None = None, **kw) -> requests.Response:
        auth = base64.b64encode(f"{key or self.c.hris_api_key}:x".encode()).decode()
        headers = {"Authorization": f"Basic {auth}", "Accept": "application/json",
                   **kw.pop("headers", {})}
        url = f"{self.sb.urls['hris']}/api/gateway.php/{self.c.hris_company}/v1{path}"
        return self.s.request(method, url, headers=headers, **kw)


@pytest.fixture
def api(sandbox, http) -> Clients:
    return Clients(sandbox, http)


def raw_get(url_host: str, port: int, path: str, headers: dict) -> tuple[int, bytes]:
    """A GET with exactly these headers (requests/urllib3 would add a User-Agent)."""
    conn = http_client.HTTPConnection(url_host, port, timeout=10)
    conn.putrequest("GET", path, skip_host=False, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


@pytest.fixture
def raw():
    return raw_get
