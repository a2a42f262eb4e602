"""Deal-to-project set-up and corrections through the outbox, in-process against the
sandbox: the full sequence, resume after a failure at each step, lost answers on
every create, and a re-run that writes nothing new."""

from __future__ import annotations

import psycopg
import pytest

from tests.writeback.helpers import (
    ERP,
    applied_creates,
    outbox_rows,
    records_in_sandbox,
    run_writeback,
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
    assert [s["deal_id"] for s in plan.new_setups] == list(VALID_DEALS)
    assert [s["project_code"] for s in plan.new_setups] == list(CODES)
    invalid = {d["deal_id"]: d["reasons"] for d in plan.invalid_deals}
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
        open_invalid = {r[0] for r in conn.execute(
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
    assert len({r["batch_id"] for r in held.values()}) == 1 and plan.batch_id
    rate_fixes = [r for r in held.values() if r["kind"] == "psa_time_entry_rate"]
    assert len(rate_fixes) == 97
    assert float(sum(r["worth"] for r in rate_fixes)) == pytest.approx(7313.35, abs=0.05)


@pytest.mark.parametrize("failing_system,failed_key,waiting_keys", [
    ("psa", "psa.project:deal:9052", ["erp.job:PRJ-00052", "crm.deal_link:9052"]),
    ("erp", "erp.job:PRJ-00052", ["crm.deal_link:9052"]),
    ("crm", "crm.deal_link:9052", []),
])
def test_failure_part_way_resumes_at_the_failed_step(wb_env, monkeypatch, failing_system,
                                                     failed_key, waiting_keys):
    target, sandbox = wb_env["target"], wb_env["sandbox"]
    import psops.writeback.outbox as outbox_mod
    from psops.writeback import planner
    from psops.writeback.source_writes import SourceWrites
    from tests.writeback.helpers import AS_OF

    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        planner.plan_writes(conn, SourceWrites(), AS_OF, "run-1")
        sandbox.set_faults(error_rate=1.0, systems=[failing_system])
        report = outbox_mod.apply_outbox(conn, SourceWrites(max_attempts=2),
                                         purpose="deal_setup")
    sandbox.set_faults(reset=True)
    rows = outbox_rows(target)
    assert rows[failed_key]["status"] == "failed"
    assert rows[failed_key]["response_body"]
    for key in waiting_keys:
        assert rows[key]["status"] == "pending"
    assert {w["key"] for w in report.waiting} >= set(waiting_keys)
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
    assert not second["plan"].new_setups and not second["plan"].auto_corrections
    assert not second["plan"].held_corrections and second["plan"].batch_id is None
    assert not second["setup"].confirmed and not second["corrections"].confirmed


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
