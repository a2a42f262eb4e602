"""Migrations on a real PostgreSQL: idempotent, and the analyst role is read-only."""

from __future__ import annotations

import psycopg
import pytest

from psops.warehouse_migrations import MigrationError, apply_migrations, migration_files


def test_migrations_apply_twice_cleanly(database_factory):
    target = database_factory.create(migrate=False)
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        first = apply_migrations(conn)
        second = apply_migrations(conn)
        schemas = {row[0] for row in conn.execute("SELECT nspname FROM pg_namespace")}
    assert first == [path.stem for path in migration_files()]
    assert second == []
    assert {"raw", "curated", "marts", "ops"} <= schemas


def test_re_executing_every_file_is_harmless(warehouse_conn):
    """Each file is idempotent SQL, even if run again by hand."""
    for path in migration_files():
        warehouse_conn.execute(path.read_text())


def test_an_edited_applied_migration_is_refused(database_factory, tmp_path):
    target = database_factory.create(migrate=False)
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE IF NOT EXISTS ops.t (id int);")
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        assert apply_migrations(conn, tmp_path) == ["0001_first"]
        (tmp_path / "0001_first.sql").write_text("CREATE TABLE IF NOT EXISTS ops.t (id bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            apply_migrations(conn, tmp_path)


@pytest.fixture
def analyst_conn(warehouse_target):
    """A session acting as psops_analyst, on tables created after the migrations ran."""
    with psycopg.connect(warehouse_target.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS marts.role_probe (n int)")
        conn.execute("INSERT INTO marts.role_probe VALUES (1)")
        conn.execute("CREATE TABLE IF NOT EXISTS curated.role_probe (n int)")
        conn.execute("CREATE TABLE IF NOT EXISTS raw.role_probe (n int)")
        conn.execute("CREATE TABLE IF NOT EXISTS confidential.role_probe (cost_rate numeric)")
        conn.execute("SET ROLE psops_analyst")
        yield conn


def test_analyst_reads_marts_and_curated_created_later(analyst_conn):
    assert analyst_conn.execute("SELECT n FROM marts.role_probe").fetchall() == [(1,)]
    assert analyst_conn.execute("SELECT count(*) FROM curated.role_probe").fetchone() == (0,)


@pytest.mark.parametrize("statement", [
    "INSERT INTO marts.role_probe VALUES (2)",
    "UPDATE marts.role_probe SET n = 3",
    "DELETE FROM marts.role_probe",
    "INSERT INTO curated.role_probe VALUES (2)",
    "CREATE TABLE marts.analyst_table (n int)",
    "CREATE TABLE curated.analyst_table (n int)",
    "CREATE TABLE ops.analyst_table (n int)",
    "CREATE TABLE public.analyst_table (n int)",
    "INSERT INTO ops.ingest_runs (dag_id, dag_run_id, system, stream, mode, status) "
    "VALUES ('x', 'x', 'crm', 'x', 'snapshot', 'running')",
    "SELECT * FROM raw.role_probe",
    "SELECT * FROM confidential.role_probe",
    "SELECT * FROM ops.ingest_runs",
])
def test_analyst_cannot_write_or_read_confidential(analyst_conn, statement):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        analyst_conn.execute(statement)


def test_rate_fixes_planned_before_0012_are_superseded_not_sent(database_factory, tmp_path):
    """Rate fixes not sent yet under the old key (no entry version) are `skipped` by 0012:
    the next plan proposes them again under a versioned key."""
    target = database_factory.create(migrate=False)
    for path in migration_files():
        if path.stem < "0012":
            (tmp_path / path.name).write_text(path.read_text())
    insert = """INSERT INTO ops.outbox (idempotency_key, kind, purpose, system, payload,
                                       description, status)
                VALUES (%s, 'psa_time_entry_rate', 'correction', 'psa', '{}', 'rate fix', %s)"""
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        apply_migrations(conn, tmp_path)
        for key, status in [("psa.time_entry_rate:1:150", "pending"),
                            ("psa.time_entry_rate:2:150", "failed"),
                            ("psa.time_entry_rate:3:150", "confirmed"),
                            ("psa.time_entry_rate:4:150@2026-03-01T00:00:00Z", "pending")]:
            conn.execute(insert, (key, status))
        apply_migrations(conn)
        statuses = dict(conn.execute("SELECT idempotency_key, status FROM ops.outbox"))
    assert statuses == {"psa.time_entry_rate:1:150": "skipped",
                        "psa.time_entry_rate:2:150": "skipped",
                        "psa.time_entry_rate:3:150": "confirmed",
                        "psa.time_entry_rate:4:150@2026-03-01T00:00:00Z": "pending"}
