"""A non-superuser warehouse owner can SET ROLE psops_analyst after the migrations.

As in docker-compose.yml: the owner is a CREATEROLE non-superuser that owns the
warehouse database and runs the migrations; the finance UI connects as it and
switches to psops_analyst. On PostgreSQL 16+ the role's creator is a member WITH
ADMIN but without SET, before 16 no member at all; migration 0007 grants it.

Migration 0010 does the same for psops_finance, which also reads `confidential`
and every row of marts.project_margin (analysts: only rows with 3 or more costed
contributors, by row level security that never hides rows from the owner, who writes).

psops_analyst and psops_finance are cluster-wide. When it does not exist yet, the owner creates it
(migration 0001), exactly as on a fresh compose server. When an earlier run left
it behind (created by a superuser), the test gives the owner the membership that
creating it would have given (16+: ADMIN without SET or INHERIT; before 16 a
CREATEROLE role may grant any non-superuser role anyway).
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import replace

import psycopg
import pytest

from psops.finance_access import FINANCE_ROLE
from psops.settings import MIGRATIONS_DIR
from psops.warehouse_migrations import apply_migrations, migration_files

GRANT_MIGRATION = "0007_warehouse_owner_sets_analyst"


@pytest.fixture
def owner_target(pg_server):
    """A fresh CREATEROLE non-superuser and a database it owns; both dropped afterwards."""
    name = f"psops_test_owner_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as admin:
        if not admin.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                             ).fetchone()[0]:
            pytest.skip("needs a superuser connection to create the owner role")
        version = int(admin.execute("SHOW server_version_num").fetchone()[0])
        admin.execute(f'CREATE ROLE "{name}" LOGIN CREATEROLE')
        admin.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
        for role in ("psops_analyst", FINANCE_ROLE):
            exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            if exists and version >= 160000:
                admin.execute(f'GRANT "{role}" TO "{name}" WITH ADMIN TRUE, INHERIT FALSE, SET FALSE')
    try:
        yield replace(pg_server, user=name, password=None, dbname=name)
    finally:
        with psycopg.connect(pg_server.conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{name}"')


def set_role_analyst(conn) -> str:
    conn.execute("SET ROLE psops_analyst")
    try:
        return conn.execute("SELECT current_user").fetchone()[0]
    finally:
        conn.execute("RESET ROLE")


def test_the_owner_is_not_a_superuser(owner_target):
    with psycopg.connect(owner_target.conninfo(), autocommit=True) as conn:
        assert conn.execute("SELECT rolsuper, rolcreaterole FROM pg_roles "
                            "WHERE rolname = current_user").fetchone() == (False, True)


def test_without_the_grant_the_owner_cannot_act_as_analyst(owner_target, tmp_path):
    """The situation 0007 fixes: everything up to 0006 applied by the owner."""
    earlier = [path for path in migration_files() if path.stem < GRANT_MIGRATION]
    assert len(earlier) == 6
    for path in earlier:
        shutil.copy(path, tmp_path / path.name)
    with psycopg.connect(owner_target.conninfo(), autocommit=True) as conn:
        assert apply_migrations(conn, tmp_path) == [path.stem for path in earlier]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="psops_analyst"):
            conn.execute("SET ROLE psops_analyst")


def test_after_the_migrations_the_owner_acts_as_analyst(owner_target):
    with psycopg.connect(owner_target.conninfo(), autocommit=True) as conn:
        assert GRANT_MIGRATION in apply_migrations(conn)
        assert set_role_analyst(conn) == "psops_analyst"
        # Still the read-only analyst: reads marts, writes nowhere.
        conn.execute("CREATE TABLE marts.grant_probe (n int)")
        conn.execute("SET ROLE psops_analyst")
        assert conn.execute("SELECT count(*) FROM marts.grant_probe").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO marts.grant_probe VALUES (1)")
        conn.execute("RESET ROLE")
        # Idempotent: the runner skips it, and running the file again by hand is harmless.
        assert apply_migrations(conn) == []
        grant_sql = (MIGRATIONS_DIR / f"{GRANT_MIGRATION}.sql").read_text()
        conn.execute(grant_sql)
        conn.execute(grant_sql)
        assert set_role_analyst(conn) == "psops_analyst"


def test_the_grant_is_done_after_an_upgrade_from_0006(owner_target, tmp_path):
    """An existing warehouse (0001-0006 applied) gets only 0007 and then works."""
    for path in migration_files():
        if path.stem < GRANT_MIGRATION:
            shutil.copy(path, tmp_path / path.name)
    with psycopg.connect(owner_target.conninfo(), autocommit=True) as conn:
        apply_migrations(conn, tmp_path)
        assert apply_migrations(conn)[0] == GRANT_MIGRATION
        assert set_role_analyst(conn) == "psops_analyst"


MARGIN_ROW = """INSERT INTO marts.project_margin
    (as_of, project_id, month_start, hours, billable_hours, revenue, cost, margin,
     hours_without_cost_rate, contributors)
    VALUES ('2026-03-04', %s, '2026-02-01', 8, 8, 800, 400, 400, 0, %s)"""


def visible_margin_rows(conn, role: str | None) -> list[tuple]:
    if role:
        conn.execute(f"SET ROLE {role}")
    try:
        return conn.execute("SELECT project_id FROM marts.project_margin ORDER BY 1").fetchall()
    finally:
        conn.execute("RESET ROLE")


def test_after_the_migrations_the_owner_acts_as_finance(owner_target):
    with psycopg.connect(owner_target.conninfo(), autocommit=True) as conn:
        apply_migrations(conn)
        # the owner writes the marts and row level security hides none of its rows
        conn.execute(MARGIN_ROW, ("solo", 1))
        conn.execute(MARGIN_ROW, ("team", 3))
        assert visible_margin_rows(conn, None) == [("solo",), ("team",)]
        assert visible_margin_rows(conn, "psops_analyst") == [("team",)]
        assert visible_margin_rows(conn, FINANCE_ROLE) == [("solo",), ("team",)]
        conn.execute(f"SET ROLE {FINANCE_ROLE}")
        try:
            assert conn.execute("SELECT count(*) FROM confidential.employee_cost_rates"
                                ).fetchone() == (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("INSERT INTO marts.project_margin (as_of) VALUES (now())")
        finally:
            conn.execute("RESET ROLE")
        # idempotent by hand too
        finance_sql = (MIGRATIONS_DIR / "0010_transform_hardening.sql").read_text()
        conn.execute(finance_sql)
        conn.execute(finance_sql)
        assert visible_margin_rows(conn, FINANCE_ROLE) == [("solo",), ("team",)]
