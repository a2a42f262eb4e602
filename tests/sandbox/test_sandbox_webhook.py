"""Alert webhook: ok, invalid_payload, one message a second."""

from __future__ import annotations

import time


def test_post_ok_and_logged(sandbox, http):
    url = sandbox.urls["webhook"] + sandbox.credentials.webhook_path
    sandbox.clear_writes()
    r = http.post(url, json={"text": "hello", "blocks": []})
    assert r.status_code == 200 and r.text == "ok"
    logged = sandbox.writes("webhook")
    assert logged[-1]["body"] == {"text": "hello", "blocks": []} and logged[-1]["status"] == 200


def test_invalid_payload_and_unknown_path(sandbox, http):
    url = sandbox.urls["webhook"] + sandbox.credentials.webhook_path
    for body in ({"blocks": []}, {"text": ""}):
        r = http.post(url, json=body)
        assert r.status_code == 400 and r.text == "invalid_payload"
    r = http.post(url, data=b"not json")
    assert r.status_code == 400 and r.text == "invalid_payload"
    assert http.post(sandbox.urls["webhook"] + "/services/X/Y/Z",
                     json={"text": "x"}).status_code == 404


def test_more_than_one_message_a_second_is_429(sandbox, http):
    sandbox.set_faults(natural_limits=True)
    url = sandbox.urls["webhook"] + sandbox.credentials.webhook_path
    time.sleep(1.05)
    assert http.post(url, json={"text": "one"}).status_code == 200
    r = http.post(url, json={"text": "two"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
