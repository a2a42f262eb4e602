"""Versioned, idempotent SQL migrations of the warehouse.

Files `include/sql/migrations/NNNN_name.sql` are applied in name order, each
once, in its own transaction, under an advisory lock so that concurrent task
processes never race. `ops.schema_migrations` records version and checksum; a
file edited after it was applied is refused loudly rather than silently skipped.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "include" / "sql" / "migrations"
# Any constant works; it only has to be the same in every process.
MIGRATION_LOCK_KEY = 7_314_159_265

_migrated_in_this_process: set[str] = set()


class MigrationError(RuntimeError):
    pass


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def _checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def apply_migrations(conn) -> list[str]:
    """Apply pending migrations on a psycopg connection; return the versions applied."""
    previous_autocommit = conn.autocommit
    conn.autocommit = True
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            return _apply_pending(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    finally:
        conn.autocommit = previous_autocommit


def _apply_pending(conn) -> list[str]:
    conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS ops.schema_migrations (
               version    text PRIMARY KEY,
               checksum   text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    applied = dict(conn.execute("SELECT version, checksum FROM ops.schema_migrations").fetchall())
    newly_applied = []
    for path in migration_files():
        version = path.stem
        checksum = _checksum(path)
        if version in applied:
            if applied[version] != checksum:
                raise MigrationError(
                    f"migration {path.name} was changed after it was applied; "
                    "add a new migration file instead of editing an applied one"
                )
            continue
        with conn.transaction():
            conn.execute(path.read_text())
            conn.execute(
                "INSERT INTO ops.schema_migrations (version, checksum) VALUES (%s, %s)",
                (version, checksum),
            )
        newly_applied.append(version)
    return newly_applied


def apply_migrations_to(target) -> list[str]:
    """Connect to a WarehouseTarget and migrate it."""
    import psycopg

    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        return apply_migrations(conn)


def ensure_migrated(conn) -> None:
    """Cheap to call from every task: migrates once per process and database."""
    key = conn.info.dsn
    if key in _migrated_in_this_process:
        return
    apply_migrations(conn)
    _migrated_in_this_process.add(key)
