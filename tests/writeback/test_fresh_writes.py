"""Write-back from fresh facts (issue #12, items 13 and 14), in-process against the sandbox.

Rate fixes: the time entry is read again before its PATCH and the fix is `skipped`
(never sent) when the entry changed since the plan, was invoiced or was corrected by
hand; overlapping rate cards are an exception and no fix is planned from them.
Deal set-up: a new project code is above every code the PSA ever returned (quarantined
projects too); a set-up step whose key belongs to another deal or project fails loudly;
a PSA project adopted for the deal gives the ERP job its code.
"""

from __future__ import annotations

import psycopg
import pytest

from psops.transform.runner import run_transform
from psops.writeback import steps
from psops.writeback.source_writes import SourceWrites
from tests.ingest.conftest import run_stream
from tests.writeback.helpers import AS_OF, ERP, outbox_rows, plan_writes, warehouse

pytestmark = pytest.mark.db


def _refresh(target, *streams: tuple[str, str]) -> None:
    """Ingest these streams again and rebuild curated and the marts."""
    for system, stream in streams:
        run_stream(target, system, stream, dag_run_id="refresh")
    with warehouse(target):
        run_transform(AS_OF)


def _rate_fixes(target) -> dict[str, dict]:
    """The planned rate fixes by time entry id."""
    return {row["record_key"]: row for row in outbox_rows(target).values()
            if row["kind"] == "psa_time_entry_rate"}


def _patched_entries(sandbox) -> set[str]:
    return {w["path"].rsplit("/", 1)[-1] for w in sandbox.writes("psa")
            if w["method"] == "PATCH" and w["path"].startswith("/v2/time_entries/")}


def test_a_rate_fix_is_skipped_when_its_entry_changed_since_the_plan(wb_env, monkeypatch):
    target, sandbox = wb_env["target"], wb_env["sandbox"]
    monkeypatch.setenv("PSOPS_APPROVAL_THRESHOLD", "1000000000")  # every fix approved at once
    plan_writes(target, "plan-1")
    fixes = _rate_fixes(target)
    assert len(fixes) >= 5 and {r["status"] for r in fixes.values()} == {"pending"}
    edited, invoiced, to_target, to_other, untouched = sorted(fixes)[:5]
    target_rate = fixes[to_target]["payload"]["billable_rate"]
    sandbox.touch("psa", "time_entries", ids=[int(edited)], changes={"hours": 1.5})
    sandbox.touch("psa", "time_entries", ids=[int(invoiced)], changes={"is_billed": True})
    sandbox.touch("psa", "time_entries", ids=[int(to_target)],
                  changes={"billable_rate": target_rate})
    sandbox.touch("psa", "time_entries", ids=[int(to_other)], changes={"billable_rate": 1.0})

    with warehouse(target):
        result = steps.apply_corrections()

    rows = _rate_fixes(target)
    reasons = {entry: rows[entry]["response_body"] for entry in (edited, invoiced, to_target, to_other)}
    assert {entry: rows[entry]["status"] for entry in reasons} == dict.fromkeys(reasons, "skipped")
    assert "changed since the plan" in reasons[edited]
    assert "invoiced" in reasons[invoiced]
    assert "corrected by hand" in reasons[to_target]
    assert "corrected by hand since the plan" in reasons[to_other]
    assert {s["key"] for s in result["skipped"]} == {rows[e]["idempotency_key"] for e in reasons}
    assert "4 skipped (changed since the plan)" in result["summary"]
    patched = _patched_entries(sandbox)
    assert not patched & set(reasons), patched & set(reasons)
    assert untouched in patched and rows[untouched]["status"] == "confirmed"
    assert all(rows[e]["status"] == "confirmed" for e in set(rows) - set(reasons))
    assert float(sandbox.dataset.time_entries.get(int(to_other))["billable_rate"]) == 1.0
    # The PATCH carries only the rate, never the plan's version.
    bodies = [w["body"] for w in sandbox.writes("psa") if w["method"] == "PATCH"]
    assert bodies and all(set(body) == {"billable_rate"} for body in bodies)

    # The next plan, from the entries as they are now, plans the edited one afresh (a new
    # version, a new key) and leaves the invoiced and the already corrected ones alone.
    _refresh(target, ("psa", "time_entries"))
    plan_writes(target, "plan-2")
    fresh = [r for r in outbox_rows(target).values()
             if r["kind"] == "psa_time_entry_rate" and r["status"] == "pending"]
    assert {r["record_key"] for r in fresh} >= {edited}
    assert not {r["record_key"] for r in fresh} & {invoiced, to_target}
    (again,) = [r for r in fresh if r["record_key"] == edited]
    assert again["idempotency_key"] != rows[edited]["idempotency_key"]
    assert again["payload"]["if_unchanged"]["updated_at"] != \
        rows[edited]["payload"]["if_unchanged"]["updated_at"]


def test_overlapping_rate_cards_are_an_exception_and_plan_no_fix(wb_env):
    target, sandbox = wb_env["target"], wb_env["sandbox"]
    with psycopg.connect(target.conninfo()) as conn:
        role, currency = conn.execute(
            """SELECT t.role, p.currency FROM curated.time_entries t
               JOIN curated.projects p ON p.project_id = t.project_id
               WHERE p.code = 'PRJ-00017' AND t.billable LIMIT 1""").fetchone()
        cards = conn.execute(
            """SELECT rate_card_id, effective_to FROM curated.rate_cards
               WHERE role = %s AND currency = %s ORDER BY effective_from""",
            (role, currency)).fetchall()
    (ended, _), (current, open_ended) = cards
    assert open_ended is None
    sandbox.touch("erp", "customrecord_rate_card", ids=[int(ended)],
                  changes={"effectiveTo": None})  # now overlaps the current card
    _refresh(target, ("erp", "rate_cards"))

    plan_writes(target, "plan-overlap")

    with psycopg.connect(target.conninfo()) as conn:
        flagged = {key for (key,) in conn.execute(
            """SELECT record_key FROM ops.exceptions WHERE rule_id = 'rate_card.overlapping'
               AND status = 'open' AND severity = 'error'""")}
        covered = {entry for (entry,) in conn.execute(
            """SELECT t.time_entry_id FROM curated.time_entries t
               JOIN curated.projects p ON p.project_id = t.project_id
               WHERE t.role = %s AND p.currency = %s""", (role, currency))}
    fixes = _rate_fixes(target)
    assert fixes  # other roles and currencies are still fixed
    assert not set(fixes) & covered, sorted(set(fixes) & covered)[:5]
    assert flagged == {ended, current}


def test_a_new_project_code_is_above_every_code_the_psa_returned(wb_env):
    """A quarantined project keeps its code: PRJ-00070 (billing type invalid, left out of
    curated) is older than the newest project the warehouse has, yet no code at or
    below it is given out."""
    target, sandbox = wb_env["target"], wb_env["sandbox"]
    with psycopg.connect(target.conninfo()) as conn:
        (quarantined, newest) = [row[0] for row in conn.execute(
            "SELECT project_id FROM curated.projects ORDER BY project_id::int LIMIT 2")]
    sandbox.touch("psa", "projects", ids=[int(quarantined)],
                  changes={"code": "PRJ-00070", "billing_type": "retainer"})
    sandbox.touch("psa", "projects", ids=[int(newest)])  # a valid project changed later
    _refresh(target, ("psa", "projects"))
    with psycopg.connect(target.conninfo()) as conn:
        assert not conn.execute("SELECT 1 FROM curated.projects WHERE code = 'PRJ-00070'"
                                ).fetchone()
        assert conn.execute("""SELECT 1 FROM ops.exceptions WHERE rule_id = 'project.billing_type_enum'
                               AND record_key = %s AND status = 'open'""", (quarantined,)).fetchone()

    plan = plan_writes(target, "plan-codes")

    assert [s["project_code"] for s in plan["new_setups"]] == ["PRJ-00071", "PRJ-00072", "PRJ-00073"]


def test_a_future_dated_project_does_not_hide_the_psas_newer_codes(wb_env):
    """A project dated 2099 in raw (item 1: only a warning) must not become the "since"
    of the PSA query: PRJ-00080, made in the PSA after the last ingest, is seen."""
    target = wb_env["target"]
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        conn.execute("""INSERT INTO raw.psa_projects (record_id, source_updated_at, payload, run_id)
                        SELECT record_id, '2099-01-01T00:00:00Z',
                               jsonb_set(payload, '{updated_at}', '"2099-01-01T00:00:00Z"'), run_id
                        FROM raw.psa_projects ORDER BY load_seq DESC LIMIT 1""")
    SourceWrites().create_project({"name": "Made after the last ingest", "code": "PRJ-00080",
                                   "billing_type": "fixed_fee", "currency": "USD"})

    plan = plan_writes(target, "plan-future")

    assert [s["project_code"] for s in plan["new_setups"]] == ["PRJ-00081", "PRJ-00082", "PRJ-00083"]


def test_a_deal_linked_to_another_project_fails_the_link_loudly(wb_env):
    target, sandbox = wb_env["target"], wb_env["sandbox"]
    plan_writes(target, "plan-link")
    other = next(p for p in sandbox.dataset.psa["projects"].all() if p.get("crm_deal_id"))
    sandbox.touch("crm", "deals", ids=[9052], changes={"psa_project_id": str(other["id"])})

    with warehouse(target):
        result = steps.set_up_projects()

    link = outbox_rows(target)["crm.deal_link:9052"]
    assert link["status"] == "failed"
    assert link["response_body"].startswith(
        f"key conflict: CRM deal 9052 already links PSA project {other['id']}")
    assert [f["key"] for f in result["failed"]] == ["crm.deal_link:9052"]
    assert sandbox.dataset.crm["deals"].get(9052)["properties"]["psa_project_id"] == str(other["id"])
    assert not [w for w in sandbox.writes("crm") if w["path"].endswith("/deals/9052")]


def test_a_set_up_key_held_by_another_write_is_not_skipped_silently(wb_env):
    """The CRM link of deal 9052 is already in the outbox, following another project's
    job: the deal's set-up is not planned (no link hanging off another project), and it
    is listed as invalid with the conflict."""
    target = wb_env["target"]
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        conn.execute("""INSERT INTO ops.outbox (idempotency_key, kind, purpose, system, step,
                            deal_id, project_code, record_key, payload, description, status)
                        VALUES ('crm.deal_link:9052', 'crm_deal_link', 'deal_setup', 'crm', 3,
                                '9052', 'PRJ-00018', '9052', '{}', 'an earlier link', 'failed')""")

    plan = plan_writes(target, "plan-conflict")

    assert "9052" not in [s["deal_id"] for s in plan["new_setups"]]
    assert [s["deal_id"] for s in plan["new_setups"]] == ["9053", "9057"]
    invalid = {d["deal_id"]: d["reasons"] for d in plan["invalid_deals"]}
    assert invalid["9052"] == ["SETUP_KEY_CONFLICT"]
    rows = outbox_rows(target)
    assert "psa.project:deal:9052" not in rows
    with psycopg.connect(target.conninfo()) as conn:
        (details,) = conn.execute(
            """SELECT details FROM ops.exceptions WHERE rule_id = 'deal.setup_invalid'
               AND record_key = '9052' AND status = 'open'""").fetchone()
    assert "the outbox already holds crm.deal_link:9052" in details["conflict"]


def test_an_adopted_project_gives_the_erp_job_its_code(wb_env):
    """Someone made the PSA project of deal 9052 by hand after the plan: the set-up adopts
    it, and the ERP job carries that project's code, not the planned one."""
    target, sandbox = wb_env["target"], wb_env["sandbox"]
    plan = plan_writes(target, "plan-adopt")
    assert plan["new_setups"][0] == {**plan["new_setups"][0], "deal_id": "9052",
                                     "project_code": "PRJ-00052"}
    made = SourceWrites().create_project({
        "name": "Made by hand", "code": "PRJ-00090", "crm_deal_id": "9052",
        "billing_type": "fixed_fee", "currency": "USD"})

    with warehouse(target):
        steps.set_up_projects()

    rows = outbox_rows(target)
    assert rows["psa.project:deal:9052"]["adopted"]
    assert rows["psa.project:deal:9052"]["remote_id"] == made.remote_id
    jobs = [w["body"] for w in sandbox.writes("erp")
            if w["method"] == "POST" and w["path"] == f"{ERP}/job"
            and w["body"]["externalId"] == made.remote_id]
    assert [job["entityId"] for job in jobs] == ["PRJ-00090"]
    assert not [j for j in sandbox.dataset.erp["job"].all() if j["entityId"] == "PRJ-00052"]
    assert rows["crm.deal_link:9052"]["status"] == "confirmed"
