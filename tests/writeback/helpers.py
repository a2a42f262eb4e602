"""Running the write-back steps in-process against a test warehouse and the sandbox."""

from __future__ import annotations

from collections import Counter
from datetime import date

import psycopg

from psops.writeback import alerts, outbox, planner
from psops.writeback.source_writes import SourceWrites

AS_OF = date(2026, 3, 31)
ERP = "/services/rest/record/v1"


def run_writeback(target, *, digest: bool = False, run_id: str = "test") -> dict:
    """plan -> set up projects -> corrections (-> digest), as the DAG's tasks do."""
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        plan = planner.plan_writes(conn, SourceWrites(), AS_OF, run_id)
        setup = outbox.apply_outbox(conn, SourceWrites(), purpose="deal_setup")
        corrections = outbox.apply_outbox(conn, SourceWrites(), purpose="correction")
        result = {"plan": plan, "setup": setup, "corrections": corrections}
        if digest:
            result["digest"] = alerts.send_digest(
                conn, AS_OF, {"confirmed": setup.confirmed + corrections.confirmed}, run_id)
    return result


def outbox_rows(target) -> dict[str, dict]:
    with psycopg.connect(target.conninfo()) as conn:
        cur = conn.execute("SELECT * FROM ops.outbox ORDER BY id")
        names = [d.name for d in cur.description]
        return {r[0]: dict(zip(names, r[1:], strict=False))
                for r in ((row[1], *row) for row in cur.fetchall())}


def applied_creates(sandbox) -> Counter:
    """Creates that reached a system (lost answers included), by what they create."""
    counts: Counter = Counter()
    for w in sandbox.writes():
        if w["method"] != "POST" or not (200 <= w["status"] < 300):
            continue
        body = w["body"] or {}
        if w["path"] == "/v2/projects":
            counts[("psa_project", body["crm_deal_id"])] += 1
        elif w["path"] == f"{ERP}/job":
            counts[("erp_job", body["entityId"])] += 1
        elif w["path"] == f"{ERP}/billingMilestone":
            counts[("erp_billing_line", body["externalId"])] += 1
    return counts


def records_in_sandbox(sandbox) -> Counter:
    """What the systems hold now: projects per deal, jobs per code, lines per milestone."""
    data = sandbox.dataset
    counts: Counter = Counter()
    for p in data.psa["projects"].all():
        if p.get("crm_deal_id"):
            counts[("psa_project", p["crm_deal_id"])] += 1
    for j in data.erp["job"].all():
        counts[("erp_job", j["entityId"])] += 1
    for b in data.erp["billingMilestone"].all():
        counts[("erp_billing_line", b["externalId"])] += 1
    return counts
