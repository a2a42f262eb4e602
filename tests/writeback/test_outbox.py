"""Deal-to-project set-up and corrections through the outbox, in-process against the
sandbox: the full sequence, resume after a failure at each step, lost answers on
every create, and a re-run that writes nothing new. (Over 300 lines: one scenario
per failure point, sharing the module's fixtures.)"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace

import psycopg
import pytest

from tests.conftest import REPO_ROOT
from tests.writeback.helpers import (
    ERP,
    applied_creates,
    outbox_rows,
    plan_writes,
    records_in_sandbox,
    run_writeback,
    warehouse,
)

pytestmark = pytest.mark.db

VALID_DEALS = ("9052", "9053", "9057")  # 9057: closed 2 days ago, valid too
CODES = ("PRJ-00052", "PRJ-00053", "PRJ-00054")


def _deal_writes(sandbox, deal_id, code, psa_id):
    """The writes of one deal's set-up, in log order."""
    out = []
    for w in sandbox.writes():
        body = w["body"] or {}
        if w["path"] == "/v2/projects" and body.get("crm_deal_id") == deal_id:
            out.append("psa_project")
        elif w["path"] == f"{ERP}/job" and body.get("entityId") == code:
            assert body["externalId"] == psa_id
            out.append("erp_job")
        elif w["path"] == f"/crm/v3/objects/deals/{deal_id}":
            assert body == {"properties": {"psa_project_id": psa_id}}
            out.append("crm_deal_link")
    return out


def test_deal_to_project_full_sequence(wb_env):
    target, sandbox = wb_env["target"], wb_env["sandbox"]
    result = run_writeback(target)
    plan = result["plan"]
    assert [s["deal_id"] for s in plan["new_setups"]] == list(VALID_DEALS)
    assert [s["project_code"] for s in plan["new_setups"]] == list(CODES)
    invalid = {d["deal_id"]: d["reasons"] for d in plan["invalid_deals"]}
    assert invalid == {"9054": ["BILLING_TYPE_MISSING"], "9055": ["NO_ERP_CUSTOMER"],
                       "9056": ["AMOUNT_NOT_POSITIVE"]}
    rows = outbox_rows(target)
    for deal_id, code in zip(VALID_DEALS, CODES, strict=True):
        project = rows[f"psa.project:deal:{deal_id}"]
        assert project["status"] == "confirmed"
        assert rows[f"erp.job:{code}"]["status"] == "confirmed"
        assert rows[f"crm.deal_link:{deal_id}"]["status"] == "confirmed"
        assert _deal_writes(sandbox, deal_id, code, project["remote_id"]) == [
            "psa_project", "erp_job", "crm_deal_link"]
        psa = [p for p in sandbox.dataset.psa["projects"].all() if p.get("crm_deal_id") == deal_id]
        assert len(psa) == 1 and psa[0]["code"] == code
        deal = sandbox.dataset.crm["deals"].get(int(deal_id))
        assert deal["properties"]["psa_project_id"] == project["remote_id"]
    fixed = next(p for p in sandbox.dataset.psa["projects"].all() if p.get("crm_deal_id") == "9052")
    assert fixed["billing_type"] == "fixed_fee" and float(fixed["fee"]) == 40000.0
    with psycopg.connect(target.conninfo()) as conn:
        open_invalid = {key for (key,) in conn.execute(
            "SELECT record_key FROM ops.exceptions WHERE rule_id = 'deal.setup_invalid' "
            "AND status = 'open' AND source_system = 'crm' AND entity = 'deal'")}
    assert open_invalid == {"9054", "9055", "9056"}
    # Corrections: PRJ-00018's missing job (worth 0) applied at once; PRJ-00006 (line
    # 10,000), PRJ-00012 (job + line 8,000) and PRJ-00017 (rate fixes) held for finance.
    assert rows["erp.job:PRJ-00018"]["status"] == "confirmed"
    assert rows["erp.job:PRJ-00018"]["decided_by"].startswith("auto:")
    held = {k: r for k, r in rows.items() if r["status"] == "awaiting_approval"}
    assert {r["project_code"] for r in held.values()} == {"PRJ-00006", "PRJ-00012", "PRJ-00017"}
    assert rows["erp.billing_line:milestone:8030"]["worth"] == 10000
    assert len({r["batch_id"] for r in held.values()}) == 1 and plan["batch_id"]
    rate_fixes = [r for r in held.values() if r["kind"] == "psa_time_entry_rate"]
    assert len(rate_fixes) == 97
    assert float(sum(r["worth"] for r in rate_fixes)) == pytest.approx(7313.35, abs=0.05)


def test_the_erp_subsidiary_of_a_region_comes_from_the_warehouse(wb_env):
    """reference.erp_subsidiaries: the subsidiary of every new ERP job (deal set-up and
    correction); a deal whose region has none cannot be set up (REGION_UNKNOWN)."""
    target = wb_env["target"]
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        conn.execute("UPDATE reference.erp_subsidiaries SET subsidiary_id = '42' "
                     "WHERE region = 'NA'")
        conn.execute("DELETE FROM reference.erp_subsidiaries WHERE region = 'EMEA'")
        subsidiary_of = dict(conn.execute(
            "SELECT region, subsidiary_id FROM reference.erp_subsidiaries").fetchall())
        region_of = dict(conn.execute("SELECT code, region FROM curated.projects").fetchall())
    plan = plan_writes(target)
    assert {d["deal_id"]: d["reasons"] for d in plan["invalid_deals"]}["9057"] == [
        "REGION_UNKNOWN"]  # an EMEA deal
    rows = outbox_rows(target)
    for code in ("PRJ-00052", "PRJ-00053"):  # deals 9052 and 9053, NA
        assert rows[f"erp.job:{code}"]["payload"]["subsidiary"] == {"id": "42"}
    corrections = [r for r in rows.values() if r["kind"] == "erp_job" and r["purpose"] == "correction"]
    assert corrections
    for row in corrections:
        expected = subsidiary_of.get(region_of[row["project_code"]])
        assert row["payload"]["subsidiary"] == {"id": expected}, row["idempotency_key"]


@pytest.mark.parametrize("failing_system,failed_key,waiting_keys", [
    ("psa", "psa.project:deal:9052", ["erp.job:PRJ-00052", "crm.deal_link:9052"]),
    ("erp", "erp.job:PRJ-00052", ["crm.deal_link:9052"]),
    ("crm", "crm.deal_link:9052", []),
])
def test_failure_part_way_resumes_at_the_failed_step(wb_env, monkeypatch, failing_system,
                                                     failed_key, waiting_keys):
    target, sandbox = wb_env["target"], wb_env["sandbox"]
    from psops.writeback import steps

    monkeypatch.setenv("PSOPS_HTTP_MAX_ATTEMPTS", "2")
    plan_writes(target, "run-1")
    sandbox.set_faults(error_rate=1.0, systems=[failing_system])
    with warehouse(target):
        report = steps.set_up_projects()
    sandbox.set_faults(reset=True)
    rows = outbox_rows(target)
    assert rows[failed_key]["status"] == "failed"
    assert rows[failed_key]["response_body"]
    for key in waiting_keys:
        assert rows[key]["status"] == "pending"
    assert {w["key"] for w in report["waiting"]} >= set(waiting_keys)
    before = applied_creates(sandbox)

    run_writeback(target, run_id="run-2")
    rows = outbox_rows(target)
    for key in ("psa.project:deal:9052", "erp.job:PRJ-00052", "crm.deal_link:9052"):
        assert rows[key]["status"] == "confirmed", key
    after = applied_creates(sandbox)
    assert after[("psa_project", "9052")] == 1
    assert after[("erp_job", "PRJ-00052")] == 1
    assert before[("psa_project", "9052")] == (0 if failing_system == "psa" else 1)
    assert records_in_sandbox(sandbox)[("psa_project", "9052")] == 1


def test_lost_answers_on_every_create_make_exactly_one_record(wb_env, monkeypatch):
    target, sandbox = wb_env["target"], wb_env["sandbox"]
    monkeypatch.setenv("PSOPS_APPROVAL_THRESHOLD", "1000000000")  # apply every correction
    sandbox.set_faults(lost_response_rate=1.0, systems=["psa", "erp", "crm"])
    run_writeback(target, run_id="lossy-1")
    writes = sandbox.writes()
    assert writes and all(w["lost"] for w in writes if w["system"] != "webhook")
    creates = applied_creates(sandbox)
    expected = {*(("psa_project", d) for d in VALID_DEALS), *(("erp_job", c) for c in CODES),
                ("erp_job", "PRJ-00018"), ("erp_job", "PRJ-00012"),
                ("erp_billing_line", "8030"), ("erp_billing_line", "8066")}
    assert set(creates) == expected
    assert all(n == 1 for n in creates.values()), creates
    held = records_in_sandbox(sandbox)
    assert all(held[key] == 1 for key in expected), held
    rows = outbox_rows(target)
    assert all(r["status"] == "confirmed" for r in rows.values()), \
        [(k, r["status"], r["response_body"]) for k, r in rows.items() if r["status"] != "confirmed"]
    assert all(r["adopted"] for r in rows.values())
    entry = sandbox.dataset.time_entries
    fixed = [r for r in rows.values() if r["kind"] == "psa_time_entry_rate"]
    assert len(fixed) == 97
    sample = fixed[0]
    assert float(entry.get(int(sample["record_key"]))["billable_rate"]) == \
        float(sample["payload"]["billable_rate"])

    # Re-run (faults still on, warehouse not re-ingested): nothing new is written.
    count = len(sandbox.writes())
    run_writeback(target, run_id="lossy-2")
    assert len(sandbox.writes()) == count
    assert applied_creates(sandbox) == creates


def test_rerun_writes_nothing_new(wb_env):
    target, sandbox = wb_env["target"], wb_env["sandbox"]
    run_writeback(target, run_id="first")
    first = len(sandbox.writes())
    assert first > 0
    second = run_writeback(target, run_id="second")
    assert len(sandbox.writes()) == first
    assert not second["plan"]["new_setups"] and not second["plan"]["auto_corrections"]
    assert not second["plan"]["held_corrections"] and second["plan"]["batch_id"] is None
    assert not second["setup"]["confirmed"] and not second["corrections"]["confirmed"]


def test_crash_after_send_is_adopted_not_repeated(wb_env):
    """A row left `sent` (the process died after the POST) is looked up and adopted."""
    target, sandbox = wb_env["target"], wb_env["sandbox"]
    run_writeback(target, run_id="first")
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        conn.execute("UPDATE ops.outbox SET status = 'sent', remote_id = NULL "
                     "WHERE idempotency_key IN ('psa.project:deal:9053', 'erp.job:PRJ-00053')")
    run_writeback(target, run_id="after-crash")
    rows = outbox_rows(target)
    assert rows["psa.project:deal:9053"]["status"] == "confirmed"
    assert rows["psa.project:deal:9053"]["adopted"]
    assert records_in_sandbox(sandbox)[("psa_project", "9053")] == 1
    assert applied_creates(sandbox)[("erp_job", "PRJ-00053")] == 1


class _RecordingTI:
    """The task instance of a task context: records what the task pushes to XCom."""

    def __init__(self, try_number: int = 1):
        self.try_number = try_number
        self.pushed: dict = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def test_a_failed_write_fails_the_task_after_everything_is_recorded(wb_env):
    """The ERP answers 400 to the job POST of deal 9052: the set-up step still writes
    every other deal and records the failed row, then the task (set_up_projects) fails;
    Airflow's retry sends only what is not confirmed."""
    from psops.writeback import steps, tasks

    target, sandbox = wb_env["target"], wb_env["sandbox"]
    run = SimpleNamespace(start_date=datetime.now(UTC), run_after=datetime.now(UTC))
    plan_writes(target, "run-1")
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        (good_customer,) = conn.execute(
            "SELECT payload->'customer' FROM ops.outbox WHERE idempotency_key = 'erp.job:PRJ-00052'"
        ).fetchone()
        conn.execute("""UPDATE ops.outbox SET payload = jsonb_set(payload, '{customer}', '{"id": "999999"}')
                        WHERE idempotency_key = 'erp.job:PRJ-00052'""")
    ti = _RecordingTI()
    assert tasks.earlier_tries_since({"ti": ti, "dag_run": run}) is None
    with warehouse(target):
        result = steps.set_up_projects()
    with pytest.raises(tasks.WritesFailed) as failed:
        tasks.fail_if_writes_failed(result, ti)
    message = str(failed.value)
    assert message.startswith("1 of 8 writes failed (ops.outbox status 'failed', 1 waiting); first: create ERP "
                              "job PRJ-00052 for the new PSA project of deal 9052: ERP POST "
                              "/services/rest/record/v1/job answered 400")
    assert "\n" not in message
    rows = outbox_rows(target)
    assert rows["erp.job:PRJ-00052"]["status"] == "failed"
    assert "INVALID_KEY_OR_REF" in rows["erp.job:PRJ-00052"]["response_body"]
    assert rows["erp.job:PRJ-00052"]["response_status"] == 400
    assert rows["crm.deal_link:9052"]["status"] == "pending"  # waits for the job
    for deal_id, code in (("9053", "PRJ-00053"), ("9057", "PRJ-00054")):
        for key in (f"psa.project:deal:{deal_id}", f"erp.job:{code}", f"crm.deal_link:{deal_id}"):
            assert rows[key]["status"] == "confirmed", key
    # The result is still the task's XCom (send_alert_digest runs anyway and reports it).
    pushed = ti.pushed["return_value"]
    assert [f["key"] for f in pushed["failed"]] == ["erp.job:PRJ-00052"]
    assert len(pushed["confirmed"]) == 7 and "1 failed (retried)" in pushed["summary"]
    before = applied_creates(sandbox)
    writes_before = len(sandbox.writes())

    # Airflow's retry after the ERP reference is fixed: only the failed and waiting rows go.
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        conn.execute("UPDATE ops.outbox SET payload = jsonb_set(payload, '{customer}', %s) "
                     "WHERE idempotency_key = 'erp.job:PRJ-00052'", (json.dumps(good_customer),))
    since = tasks.earlier_tries_since({"ti": _RecordingTI(try_number=2), "dag_run": run})
    assert since == run.run_after
    with warehouse(target):
        retry = tasks.fail_if_writes_failed(steps.set_up_projects(earlier_tries_since=since))
    assert not retry["failed"]
    # The digest still hears of what the first try wrote (its XCom is cleared by the retry).
    assert [c["key"] for c in retry["confirmed"]][-2:] == ["erp.job:PRJ-00052", "crm.deal_link:9052"]
    assert {c["key"] for c in retry["confirmed"]} == {c["key"] for c in pushed["confirmed"]} | {
        "erp.job:PRJ-00052", "crm.deal_link:9052"}
    assert "3 PSA projects" in retry["summary"]
    new_writes = sandbox.writes()[writes_before:]
    assert [(w["method"], w["path"]) for w in new_writes] == [
        ("POST", f"{ERP}/job"), ("PATCH", "/crm/v3/objects/deals/9052")]
    after = applied_creates(sandbox)
    assert after - before == Counter({("erp_job", "PRJ-00052"): 1})
    assert all(n == 1 for n in after.values()), after
    assert {r["status"] for r in outbox_rows(target).values() if r["purpose"] == "deal_setup"} \
        == {"confirmed"}


def test_corrections_are_skipped_without_a_plan():
    """apply_corrections runs after a failed set-up too, but not without a plan."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.exceptions import AirflowSkipException

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "psops_writeback.py"))
    task = bag.dags["psops_writeback"].get_task("apply_corrections")
    with pytest.raises(AirflowSkipException, match="plan_writes did not succeed"):
        task.python_callable(None)


@pytest.mark.slow
def test_writeback_dag_with_the_erp_down(wb_env, airflow_home):
    """The real DAG (`bin/airflow dags test`) with every ERP request answered 5xx: the
    write tasks record everything, fail, are retried by Airflow without creating anything
    twice, and post one failure each; the digest still goes out and lists what was
    written and what failed; the run is failed."""
    from tests.conftest import run_bin_airflow
    from tests.writeback.helpers import AS_OF

    target, sandbox = wb_env["target"], wb_env["sandbox"]
    sandbox.set_faults(error_rate=1.0, systems=["erp"])
    result = run_bin_airflow(["dags", "test", "psops_writeback", AS_OF.isoformat()], airflow_home,
                             {"PSOPS_HTTP_MAX_ATTEMPTS": "2", "PSOPS_RETRIES": "2",
                              "PSOPS_HTTP_BACKOFF_BASE_SECONDS": "0.01"})
    sandbox.set_faults(reset=True)
    output = result.stdout + result.stderr
    assert "DagRun Finished: dag_id=psops_writeback" in output and "state=failed" in output, \
        output[-5000:]
    assert output.count("WritesFailed: ") >= 6, output[-5000:]  # 3 tries of each write task
    rows = outbox_rows(target)
    assert rows["erp.job:PRJ-00052"]["status"] == "failed"
    assert rows["erp.job:PRJ-00052"]["attempts"] == 3
    assert rows["erp.job:PRJ-00018"]["status"] == "failed"  # a correction: apply_corrections ran
    creates = applied_creates(sandbox)
    assert {k: n for k, n in creates.items() if k[0] == "psa_project"} == {
        ("psa_project", d): 1 for d in VALID_DEALS}
    posts = [w for w in sandbox.writes("webhook") if w["method"] == "POST"]
    texts = [p["body"]["text"] for p in posts]
    failures = sorted(t for t in texts if t.startswith("psops task failed: "))
    assert len(failures) == 2, texts
    assert failures[0].startswith("psops task failed: psops_writeback.apply_corrections (run ")
    assert failures[1].startswith("psops task failed: psops_writeback.set_up_projects (run ")
    assert all(", try 3): WritesFailed: " in t for t in failures), failures
    (digest,) = [p["body"] for p in posts if p["body"]["text"].startswith("psops digest")]
    sections = "\n".join(b["text"]["text"] for b in digest["blocks"] if b["type"] == "section")
    assert "*Writes that failed*" in sections and "create ERP job PRJ-00052" in sections
    assert "*Written to the source systems this run*" in sections  # from the failed task's XCom
    assert "PSA project PRJ-00052" in sections
