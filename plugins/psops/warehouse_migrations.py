"""Versioned, idempotent SQL migrations of the warehouse.

Files `include/sql/migrations/NNNN_name.sql` are applied in name order, each
once, in its own transaction, under an advisory lock so that concurrent task
processes never race. `ops.schema_migrations` records version and checksum; a
file edited after it was applied is refused loudly rather than silently skipped.

    python -m psops.warehouse_migrations   # migrate the Airflow connection `warehouse`
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from psops.settings import MIGRATION_LOCK_KEY, MIGRATIONS_DIR

_migrated_in_this_process: set[str] = set()


class MigrationError(RuntimeError):
    pass


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    return sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def _checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def apply_migrations(conn, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the pending migrations of `directory` on a psycopg connection; return the
    versions applied."""
    previous_autocommit = conn.autocommit
    conn.autocommit = True
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            return _apply_pending(conn, migration_files(directory))
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    finally:
        conn.autocommit = previous_autocommit


def _apply_pending(conn, files: list[Path]) -> list[str]:
    conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS ops.schema_migrations (
               version    text PRIMARY KEY,
               checksum   text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    applied = dict(conn.execute("SELECT version, checksum FROM ops.schema_migrations").fetchall())
    newly_applied = []
    for path in files:
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


def ensure_migrated(conn) -> None:
    """Cheap to call from every task: migrates once per process and database."""
    key = conn.info.dsn
    if key in _migrated_in_this_process:
        return
    apply_migrations(conn)
    _migrated_in_this_process.add(key)


def main() -> int:
    """Migrate the `warehouse` connection (e.g. docker-compose's airflow-init)."""
    from psops.db import warehouse_connection

    with warehouse_connection(autocommit=True, migrate=False) as conn:
        applied = apply_migrations(conn)
    print(f"psops: warehouse migrated ({len(applied)} new migration(s)"
          f"{': ' + ', '.join(applied) if applied else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
