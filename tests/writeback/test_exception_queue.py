"""The exception queue's lifecycle (psops.exception_queue), fed with records as values the
way the write-back's `deal.setup_invalid` check feeds it (the transform's rules feed it a
query: tests/transform/test_quality_and_runs.py)."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest
from psycopg.rows import dict_row

from psops.exception_queue import ExceptionRule, SyncOutcome, sync_rule

pytestmark = pytest.mark.db

RULE = ExceptionRule("test.check", "warning", "crm", "deal")
OTHER = ExceptionRule("test.other_check", "warning", "crm", "deal")


@pytest.fixture
def conn(database_factory):
    target = database_factory.create()
    with psycopg.connect(target.conninfo(), autocommit=True, row_factory=dict_row) as conn:
        yield conn


def _rows(conn, rule: ExceptionRule) -> list[dict]:
    return conn.execute(
        """SELECT record_key, status, times_seen, details, first_as_of, last_as_of,
                  last_transform_run_id, resolved_at IS NOT NULL AS has_resolved_at, resolved_by
           FROM ops.exceptions WHERE rule_id = %s ORDER BY record_key, id""",
        (rule.rule_id,)).fetchall()


def test_open_bump_and_resolve(conn):
    day1, day2, day3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)
    assert sync_rule(conn, RULE, {"1": {"why": "a"}, "2": {"why": "b"}}, day1,
                     checked_by="run 1") == \
        SyncOutcome(failing=2, opened=2, resolved=0)
    sync_rule(conn, OTHER, {"1": {}}, day1, checked_by="run 1")

    # Seen again with new details, one record fixed: bumped and resolved.
    assert sync_rule(conn, RULE, {"1": {"why": "c"}}, day2, checked_by="run 2", run_id=7) == \
        SyncOutcome(failing=1, opened=0, resolved=1)
    rows = _rows(conn, RULE)
    assert [(r["record_key"], r["status"], r["times_seen"]) for r in rows] == [
        ("1", "open", 2), ("2", "resolved", 1)]
    assert rows[0]["details"] == {"why": "c"} and rows[0]["last_as_of"] == day2
    assert rows[0]["first_as_of"] == day1 and rows[0]["last_transform_run_id"] == 7
    # Who resolved a row: the run that checked, and the transform run when one ran the rule.
    assert rows[1]["has_resolved_at"] and rows[1]["last_transform_run_id"] == 7
    assert rows[1]["resolved_by"] == "run 2" and rows[0]["resolved_by"] is None

    # Nothing fails any more; a rule resolves only its own rows.
    assert sync_rule(conn, RULE, {}, day3, checked_by="run 3") == SyncOutcome(failing=0, opened=0, resolved=1)
    assert {r["status"] for r in _rows(conn, RULE)} == {"resolved"}
    assert [r["status"] for r in _rows(conn, OTHER)] == ["open"]

    # Failing again after being resolved: a new open row, the history kept.
    assert sync_rule(conn, RULE, {"2": {}}, day3, checked_by="run 3") == SyncOutcome(failing=1, opened=1, resolved=0)
    assert [(r["record_key"], r["status"]) for r in _rows(conn, RULE)] == [
        ("1", "resolved"), ("2", "resolved"), ("2", "open")]
