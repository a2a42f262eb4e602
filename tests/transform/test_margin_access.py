"""marts.project_margin for analysts and finance: margin at cost is for psops_finance;
psops_analyst sees a project-month only when at least 3 people's hours are costed in
it, so that cost / hours never gives away one person's cost rate (row level security,
migration 0010)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from psops.db import ANALYST_ROLE
from psops.finance_access import FINANCE_ROLE
from psops.transform.runner import run_transform
from tests.transform.conftest import AS_OF, hris_employee, load_hris, psa_project, rows, time_entry


def as_role(conn, role: str, query: str, *params) -> list[tuple]:
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    try:
        return rows(conn, query, *params)
    finally:
        conn.execute("RESET ROLE")


MARGIN = ("SELECT project_code, contributors, cost FROM marts.project_margin "
          "WHERE as_of = %s ORDER BY project_code")


@pytest.fixture
def margins(wh, raw):
    load_hris(raw, [hris_employee(1, "a@x.com"), hris_employee(2, "b@x.com"),
                    hris_employee(3, "c@x.com"), hris_employee(4, "d@x.com", cost="")])
    raw.load("psa_projects", [psa_project(1, "PRJ-00001"), psa_project(2, "PRJ-00002"),
                              psa_project(3, "PRJ-00003")])

    def entry(teid, email, project):
        return time_entry(teid, "2026-02-03", 4, email, project_id=project,
                          code=f"PRJ-0000{project}")

    raw.load("psa_time_entries", [
        entry(1, "a@x.com", 1), entry(2, "a@x.com", 1),                          # one person
        entry(3, "a@x.com", 2), entry(4, "b@x.com", 2), entry(5, "c@x.com", 2),  # three
        # three people, but d has no cost rate: the cost is a's and b's alone
        entry(6, "a@x.com", 3), entry(7, "b@x.com", 3), entry(8, "d@x.com", 3),
    ])
    run_transform(AS_OF)
    return wh


def test_the_writer_sees_every_row(margins):
    assert [row[:2] for row in rows(margins, MARGIN, AS_OF)] == [
        ("PRJ-00001", 1), ("PRJ-00002", 3), ("PRJ-00003", 2)]


def test_analysts_see_margin_only_where_three_people_are_costed(margins):
    assert as_role(margins, ANALYST_ROLE, MARGIN, AS_OF) == [("PRJ-00002", 3, 600)]


def test_finance_sees_every_row_and_the_cost_rates(margins):
    assert [row[:2] for row in as_role(margins, FINANCE_ROLE, MARGIN, AS_OF)] == [
        ("PRJ-00001", 1), ("PRJ-00002", 3), ("PRJ-00003", 2)]
    assert as_role(margins, FINANCE_ROLE, "SELECT count(*) FROM confidential.employee_cost_rates "
                   "WHERE cost_rate IS NOT NULL") == [(3,)]
    # and what analysts read besides
    assert as_role(margins, FINANCE_ROLE, "SELECT count(*) FROM curated.time_entries") == [(8,)]


def test_finance_and_analysts_write_nowhere(margins):
    for role in (ANALYST_ROLE, FINANCE_ROLE):
        margins.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        try:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                margins.execute("DELETE FROM marts.project_margin")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                margins.execute("UPDATE confidential.employee_cost_rates SET cost_rate = 0")
        finally:
            margins.execute("RESET ROLE")
