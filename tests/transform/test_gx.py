"""GX suites (generated from the rule catalogue) validated in PostgreSQL agree with the
set-based SQL of the same rules, results are kept, Data Docs are built. ~15 s (GX import)."""

from __future__ import annotations

from psops.transform.rules import load_catalogue
from psops.transform.runner import run_transform
from tests.transform.conftest import (
    AS_OF,
    crm_deal,
    expense,
    hris_employee,
    load_hris,
    milestone,
    psa_project,
    records,
    time_entry,
)

U = "u@x.com"


def test_gx_and_sql_find_the_same_failures(wh, raw, tmp_path):
    load_hris(raw, [hris_employee(1, U, term="2026-03-01"), hris_employee(2, "v@x.com", hours=""),
                    hris_employee(3, "w@x.com", hire="not a date")])
    raw.load("psa_projects", [psa_project(1, "PRJ-00001"), psa_project(2, "PRJ-00002", billing_type="retainer")])
    raw.load("psa_milestones", [milestone(1, 1, "PRJ-00001", 0, "2026-01-01")])
    raw.load("crm_deals", [crm_deal(1, closedate="2026-01-01T00:00:00Z")])
    raw.load("psa_time_entries", [
        time_entry(1, "2026-03-02", 30, U), time_entry(2, "2026-03-02", 4, U, project_id=99),
        time_entry(3, "2026-03-09", 4, U), time_entry(4, "2026-03-02", 4, "x@y.com"),
        time_entry(5, "2026-03-02", 4, U, status="bogus"), time_entry(6, "2026-02-31", 4, U),
    ])
    raw.load("psa_expenses", [expense(1, "2026-03-02", -5, U)])
    docs = tmp_path / "docs"
    result = run_transform(AS_OF, with_gx=True, docs_dir=docs)

    results = records(wh, "SELECT rule_id, success, unexpected_count, sql_failing_count "
                      "FROM ops.quality_results WHERE transform_run_id = %s", result.run_id)
    assert len(results) == len(load_catalogue().rules)
    mismatched = [r for r in results if r["unexpected_count"] != r["sql_failing_count"]
                  or r["success"] != (r["sql_failing_count"] == 0)]
    assert mismatched == []
    failing = {r["rule_id"] for r in results if not r["success"]}
    assert {"time_entry.hours_range", "time_entry.unknown_project", "time_entry.future_date",
            "time_entry.unknown_employee", "time_entry.after_termination", "time_entry.status_enum",
            "time_entry.spent_date_invalid", "expense.amount_positive", "milestone.amount_positive",
            "project.missing_erp_code", "project.billing_type_enum", "deal.closed_won_without_project",
            "employee.missing_standard_hours", "employee.hire_date_invalid"} <= failing
    assert (docs / "index.html").exists()


def test_gx_validates_the_changed_records_and_the_whole_table_once_a_week(wh, raw, tmp_path):
    load_hris(raw, [hris_employee(1, U)])
    raw.load("psa_projects", [psa_project(1, "PRJ-00001")])
    raw.load("psa_time_entries", [time_entry(i, "2026-03-02", 4, U) for i in range(1, 6)])
    run_transform(AS_OF, with_gx=True, docs_dir=tmp_path)
    raw.load("psa_time_entries", [time_entry(6, "2026-03-02", 30, U)])  # one new, failing
    second = run_transform(AS_OF, with_gx=True, docs_dir=tmp_path)

    def result(run_id, rule_id):
        return records(wh, "SELECT scope, element_count, unexpected_count, sql_failing_count "
                           "FROM ops.quality_results WHERE transform_run_id = %s AND rule_id = %s",
                       run_id, rule_id)[0]

    assert result(second.run_id, "time_entry.hours_range") == {
        "scope": "changed", "element_count": 1, "unexpected_count": 1, "sql_failing_count": 1}
    assert result(second.run_id, "employee.status_enum")["scope"] == "table"  # HRIS snapshot
    wh.execute("UPDATE ops.quality_results SET validated_at = validated_at - interval '8 days'")
    third = run_transform(AS_OF, with_gx=True, docs_dir=tmp_path)
    assert result(third.run_id, "time_entry.hours_range") == {
        "scope": "table", "element_count": 6, "unexpected_count": 1, "sql_failing_count": 1}


def test_a_gx_failure_fails_the_check_after_the_exceptions_are_kept(wh, raw, tmp_path,
                                                                     monkeypatch):
    """GX runs beside the SQL gates: its failure fails the step, and the exception queue
    the gates synchronised meanwhile stays committed (no GX result is kept)."""
    import pytest

    from psops.transform import gx_validation

    def broken_gx(*args, **kwargs):
        raise RuntimeError("GX could not reach the warehouse")

    monkeypatch.setattr(gx_validation, "run_gx", broken_gx)
    load_hris(raw, [hris_employee(1, U)])
    raw.load("psa_projects", [psa_project(1, "PRJ-00001")])
    raw.load("psa_time_entries", [time_entry(1, "2026-03-02", 30, U)])
    with pytest.raises(RuntimeError, match="GX could not reach the warehouse"):
        run_transform(AS_OF, with_gx=True, docs_dir=tmp_path)
    assert {"rule_id": "time_entry.hours_range"} in records(
        wh, "SELECT rule_id FROM ops.exceptions WHERE status = 'open'")
    assert records(wh, "SELECT count(*) AS n FROM ops.quality_results") == [{"n": 0}]
    assert records(wh, "SELECT status FROM ops.transform_runs") == [{"status": "failed"}]
