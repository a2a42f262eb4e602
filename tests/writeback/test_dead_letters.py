"""A write whose target always refuses it is given up (`dead`) after
PSOPS_OUTBOX_MAX_ATTEMPTS sends: never sent again, listed in the alert digest and on the
finance UI's exceptions page."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from psops.writeback import alerts, steps, tasks
from tests.conftest import run_bin_airflow, temporary_environment
from tests.writeback.helpers import AS_OF, ERP, outbox_rows, plan_writes, warehouse

pytestmark = pytest.mark.db

KEY = "erp.job:PRJ-00052"


def _job_posts(sandbox) -> list[dict]:
    return [w for w in sandbox.writes() if w["method"] == "POST" and w["path"] == f"{ERP}/job"
            and (w["body"] or {}).get("entityId") == "PRJ-00052"]


def _set_up(target) -> dict:
    with warehouse(target):
        return steps.set_up_projects()


@pytest.fixture(scope="module")
def ui_metadata():
    """This process's Airflow home migrated (the UI's login checks revoked tokens there)."""
    migrated = run_bin_airflow(["dags", "list"], Path(os.environ["AIRFLOW_HOME"]))
    assert migrated.returncode == 0, migrated.stderr[-3000:]


def _exceptions_page(target) -> str:
    """The finance UI's exceptions page over `target`, as the finance user."""
    from fastapi.testclient import TestClient

    from psops.ui.app import create_app
    from tests.ui.conftest import FINANCE_USER, JWT_SECRET, _token_factory

    with temporary_environment(AIRFLOW_CONN_WAREHOUSE=target.airflow_uri(),
                               AIRFLOW__API_AUTH__JWT_SECRET=JWT_SECRET,
                               PSOPS_FINANCE_USERS=FINANCE_USER):
        token = _token_factory()(FINANCE_USER)
        response = TestClient(create_app(), root_path="/psops").get(
            "/exceptions", cookies={"_token": token})
    assert response.status_code == 200, response.text[:2000]
    return response.text


def test_a_write_that_always_fails_is_given_up_after_n_attempts(wb_env, monkeypatch,
                                                                 ui_metadata):
    target, sandbox = wb_env["target"], wb_env["sandbox"]
    monkeypatch.setenv("PSOPS_OUTBOX_MAX_ATTEMPTS", "3")
    plan_writes(target, "run-1")
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:  # ERP: 400 every time
        conn.execute("""UPDATE ops.outbox
                        SET payload = jsonb_set(payload, '{customer}', '{"id": "999999"}')
                        WHERE idempotency_key = %s""", (KEY,))
    for attempt in (1, 2):
        result = _set_up(target)
        assert [f["key"] for f in result["failed"]] == [KEY], attempt
        assert outbox_rows(target)[KEY]["status"] == "failed"

    third = _set_up(target)
    assert not third["failed"] and [d["key"] for d in third["dead"]] == [KEY]
    with pytest.raises(tasks.WritesFailed, match=r"1 given up \(ops.outbox status 'dead'\)"):
        tasks.fail_if_writes_failed(third)
    row = outbox_rows(target)[KEY]
    assert row["status"] == "dead" and row["attempts"] == 3
    assert "INVALID_KEY_OR_REF" in row["response_body"]  # the reason: the last error
    assert len(_job_posts(sandbox)) == 3

    fourth = _set_up(target)  # never sent again
    assert not fourth["failed"] and not fourth["dead"]
    assert len(_job_posts(sandbox)) == 3
    assert outbox_rows(target)[KEY]["status"] == "dead"

    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        digest = alerts.send_digest(conn, AS_OF, {}, "digest")
    assert digest["status"] == "sent"
    (post,) = [w for w in sandbox.writes("webhook") if w["method"] == "POST"]
    text = "\n".join(b["text"]["text"] for b in post["body"]["blocks"] if b["type"] == "section")
    dead = text.split("*Writes given up")[1].split("\n*")[0]
    assert "create ERP job PRJ-00052" in dead and "given up after 3 attempts" in dead
    assert "INVALID_KEY_OR_REF" in dead
    assert "create ERP job PRJ-00052" not in text.split("*Writes given up")[0]

    page = _exceptions_page(target).split('id="dead-writes"')[1].split("</table>")[0]
    assert "create ERP job PRJ-00052" in page and "INVALID_KEY_OR_REF" in page
    assert ">3<" in page  # attempts
