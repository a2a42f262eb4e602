"""SourceApiHook over real HTTP (a scripted loopback server): auth, throttling, errors."""

from __future__ import annotations

import json
import logging

import pytest
from airflow.sdk.exceptions import AirflowFailException

from psops.connectors.source_api_hook import SourceApiError, SourceApiHook
from tests.ingest.scripted_server import ScriptedServer

SECRET = "s3cr3t-token-value"


@pytest.fixture
def server():
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setenv("PSOPS_HTTP_BACKOFF_BASE_SECONDS", "0.01")


def _hook(monkeypatch, server, auth_style, conn_id="test_api", **conn):
    value = {"conn_type": "http", "host": "127.0.0.1", "port": server.port, "schema": "http",
             **conn}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))
    return SourceApiHook(conn_id, auth_style, "test")


def test_bearer_account_headers_and_no_extra_leaks(monkeypatch, server):
    server.add("/v2/projects", (200, {}, {"projects": []}))
    hook = _hook(monkeypatch, server, "bearer_account", login="acct-7", password=SECRET,
                 extra={"company": "acme", "path": "/services/x"})
    hook.request("GET", "/v2/projects")
    headers = server.requests[0]["headers"]
    assert headers["Authorization"] == f"Bearer {SECRET}"
    assert headers["PSA-Account-Id"] == "acct-7"
    assert headers["User-Agent"].startswith("psops/")
    assert "company" not in {k.lower() for k in headers} and "path" not in {k.lower() for k in headers}


def test_basic_api_key_uses_x_as_password(monkeypatch, server):
    server.add("/r", (200, {}, []))
    hook = _hook(monkeypatch, server, "basic_api_key", login="key123", extra={"company": "acme"})
    hook.request("GET", "/r")
    import base64

    sent = server.requests[0]["headers"]["Authorization"]
    assert sent == "Basic " + base64.b64encode(b"key123:x").decode()
    assert hook.extra("company") == "acme"


def test_retry_after_is_honoured_and_counted(monkeypatch, server):
    server.add("/p", (429, {"Retry-After": "0"}, {"status": "error"}),
               (429, {"Retry-After": "0"}, {"status": "error"}), (200, {}, {"ok": 1}))
    hook = _hook(monkeypatch, server, "bearer", password=SECRET)
    assert hook.request("GET", "/p").json() == {"ok": 1}
    assert (hook.metrics.requests, hook.metrics.throttled, hook.metrics.retries) == (3, 2, 2)
    assert hook.metrics.failed_requests == 2


def test_429_without_retry_after_backs_off_then_gives_up(monkeypatch, server):
    server.add("/erp", (429, {}, b""))
    hook = _hook(monkeypatch, server, "bearer", password=SECRET)
    hook.max_attempts = 4
    with pytest.raises(SourceApiError, match="still failing after 4 attempts"):
        hook.request("GET", "/erp")
    assert hook.metrics.requests == 4 and hook.metrics.throttled == 4


def test_5xx_retried_for_reads_not_for_creates(monkeypatch, server):
    server.add("/read", (503, {}, b"busy"), (502, {}, b"bad gw"), (200, {}, {"ok": True}))
    server.add("/create", (500, {}, b"oops"))
    hook = _hook(monkeypatch, server, "bearer", password=SECRET)
    assert hook.request("GET", "/read").json() == {"ok": True}
    with pytest.raises(SourceApiError, match="may have been applied"):
        hook.request("POST", "/create", json={"a": 1})
    assert sum(1 for r in server.requests if r["path"] == "/create") == 1


def test_dropped_connection_retried_for_reads(monkeypatch, server):
    server.add("/flaky", ("drop", {}, b""), (200, {}, {"ok": True}))
    hook = _hook(monkeypatch, server, "bearer", password=SECRET)
    assert hook.request("GET", "/flaky").json() == {"ok": True}
    assert hook.metrics.failed_requests == 1


def test_an_answer_cut_off_mid_body_is_a_lost_answer(monkeypatch, server):
    server.add("/cut", ("truncate", {}, b""), (200, {}, {"ok": True}))
    hook = _hook(monkeypatch, server, "bearer", password=SECRET)
    assert hook.request("GET", "/cut").json() == {"ok": True}
    server.add("/create", ("truncate", {}, b""))
    with pytest.raises(SourceApiError, match="may have been applied"):
        hook.request("POST", "/create", json={"a": 1})
    assert sum(1 for r in server.requests if r["path"] == "/create") == 1


@pytest.mark.parametrize("status", [400, 404, 422])
def test_caller_errors_fail_at_once_with_the_body(monkeypatch, server, status):
    server.add("/bad", (status, {}, {"message": f"explained {status}"}))
    hook = _hook(monkeypatch, server, "bearer", password=SECRET)
    with pytest.raises(AirflowFailException, match=f"answered {status}.*explained {status}"):
        hook.request("GET", "/bad")
    assert len(server.requests) == 1


def test_wrong_credentials_fail_naming_system_and_connection(monkeypatch, server, caplog):
    server.add("/x", (401, {}, {"message": "bad token"}))
    hook = _hook(monkeypatch, server, "bearer", password=SECRET)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(AirflowFailException, match="TEST rejected the credentials of "
                                                      "connection 'test_api'") as err:
            hook.request("GET", "/x")
    assert SECRET not in str(err.value) and SECRET not in caplog.text


def test_oauth_token_fetched_then_refreshed_on_401(monkeypatch, server):
    server.add("/oauth2/token", (200, {}, {"access_token": "t1", "expires_in": 3600}),
               (200, {}, {"access_token": "t2", "expires_in": 3600}))
    server.add("/rec", (200, {}, {"n": 1}), (401, {}, {"error": "expired"}), (200, {}, {"n": 2}))
    hook = _hook(monkeypatch, server, "oauth2_client_credentials", login="cid", password=SECRET)
    hook.token_path = "/oauth2/token"
    assert hook.request("GET", "/rec").json() == {"n": 1}
    assert hook.request("GET", "/rec").json() == {"n": 2}
    paths = [r["path"].split("?")[0] for r in server.requests]
    assert paths == ["/oauth2/token", "/rec", "/rec", "/oauth2/token", "/rec"]
    token_form = server.requests[0]["body"].decode()
    assert "grant_type=client_credentials" in token_form and "client_id=cid" in token_form
    assert server.requests[-1]["headers"]["Authorization"] == "Bearer t2"
    assert hook.metrics.requests == 5


def test_missing_credentials_name_the_field(monkeypatch, server):
    hook = _hook(monkeypatch, server, "bearer_account", password=SECRET)
    with pytest.raises(AirflowFailException, match="has no login \\(the account id\\)"):
        hook.request("GET", "/v2/projects")


def test_503_with_retry_after_is_not_a_reason_to_resend_a_create(monkeypatch, server):
    """Only reads are resent on a 503: a create may have been applied (the outbox looks up)."""
    server.add("/v2/projects", (503, {"Retry-After": "0"}, b"busy"))
    hook = _hook(monkeypatch, server, "bearer", password=SECRET)
    with pytest.raises(SourceApiError, match="may have been applied"):
        hook.request("POST", "/v2/projects", json={"name": "x"})
    assert len(server.requests) == 1


def test_webhook_path_is_a_secret_and_never_in_messages(monkeypatch, server, caplog):
    secret_path = "/services/T0SECRET/B0SECRET/very-secret-token"
    server.add(secret_path, (429, {"Retry-After": "0"}, b"slow down"), (400, {}, b"invalid_payload"))
    hook = _hook(monkeypatch, server, "none", extra={"path": secret_path})
    with caplog.at_level(logging.INFO):  # Airflow's task log level (urllib3 DEBUG shows URLs)
        with pytest.raises(AirflowFailException) as err:
            hook.request("POST", hook.extra("path"), json={"no": "text"})
    assert "invalid_payload" in str(err.value)
    assert "very-secret-token" not in str(err.value) and "very-secret-token" not in caplog.text
    assert "/services/…(redacted)" in str(err.value)


def test_a_link_to_another_host_is_never_followed_with_the_credentials(monkeypatch, server):
    """A next-page link is an answer's data: only the connection's own origin gets the token."""
    hook = _hook(monkeypatch, server, "bearer_account", login="acct-7", password=SECRET)
    for foreign in (f"http://127.0.0.2:{server.port}/v2/projects?page=2",
                    f"https://127.0.0.1:{server.port}/v2/projects?page=2",
                    f"http://127.0.0.1:{server.port + 1}/v2/projects?page=2",
                    "http://attacker.example/v2/projects"):
        with pytest.raises(AirflowFailException, match="refusing to send the credentials"):
            hook.request("GET", foreign)
    assert server.requests == []  # nothing was sent anywhere

    server.add("/v2/projects", (200, {}, {"projects": []}))
    hook.request("GET", f"http://127.0.0.1:{server.port}/v2/projects?page=2")  # its own: fine
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"


def test_ids_from_a_source_are_one_path_segment():
    from psops.writeback.source_writes import SourceWrites

    class RecordingHook:
        def __init__(self):
            self.paths = []

        def request(self, method, path, **kwargs):
            self.paths.append(path)

            class Answer:
                status_code = 404

                @staticmethod
                def json():
                    return {}
            return Answer()

    psa, crm, erp = RecordingHook(), RecordingHook(), RecordingHook()
    writes = SourceWrites(hooks={"psa": psa, "crm": crm, "erp": erp})
    writes.get_time_entry("12/../../admin?x=1")
    writes.get_deal("9#1", ["psa_project_id"])
    writes.find_erp("job", "a/b")
    assert psa.paths == ["/v2/time_entries/12%2F..%2F..%2Fadmin%3Fx%3D1"]
    assert crm.paths == ["/crm/v3/objects/deals/9%231"]
    assert erp.paths == ["/services/rest/record/v1/job/eid:a%2Fb"]
