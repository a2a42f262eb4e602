"""Run locks: PostgreSQL advisory locks taken with a timeout, so that two runs of one
ingest stream (or two transform steps) never interleave, and a run that cannot get the
lock fails with a clear error instead of waiting for ever. A killed process's locks go
with its connection, so the next run gets the lock and finds the killed run's row still
`running`: `abandon_message` is what it records on that row."""

from __future__ import annotations

import psycopg

from psops.db import scalar
from psops.settings import RUN_LOCK_TIMEOUT_SECONDS


class RunLockTimeout(RuntimeError):
    """Another run held the lock longer than PSOPS_RUN_LOCK_TIMEOUT_SECONDS."""


def take(conn, lock_sql: str, params: tuple, what: str) -> None:
    """Run `lock_sql` (a pg_advisory_lock or pg_advisory_xact_lock call), waiting at most
    PSOPS_RUN_LOCK_TIMEOUT_SECONDS. Other statements keep the connection's lock_timeout."""
    seconds = RUN_LOCK_TIMEOUT_SECONDS.number()
    previous = scalar(conn, "SELECT current_setting('lock_timeout')")
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{max(1, int(seconds * 1000))}ms",))
    try:
        conn.execute(lock_sql, params)
    except psycopg.errors.LockNotAvailable:
        if conn.autocommit:  # in a transaction, its rollback restores the setting
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (previous,))
        raise RunLockTimeout(
            f"{what}: another run still holds the lock after {seconds:g} s "
            f"({RUN_LOCK_TIMEOUT_SECONDS.name}); it is still running or stuck - see its "
            "`running` row in ops") from None
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (previous,))


def abandon_message(found_by: int) -> str:
    """The error recorded on a run row left `running` by a process that ended."""
    return ("abandoned: the run's process ended without recording an outcome; "
            f"found by run {found_by}")
