"""Raw retention (the psops_maintenance DAG): keep every record's latest version and
`PSOPS_RAW_RETENTION_DAYS` days of history in the append-only raw tables.

A raw row is deleted when it was loaded before the cut-off (now minus N days) AND it is
not its record's latest version, "latest" being exactly what the transform's staging
reads (psops.transform.curated):
- an incremental stream: the winning copy of each record (`latest_raw`), and every copy
  without an update time loaded after it (what `<entity>.version_time_unparseable`
  quarantines the record on);
- a snapshot stream: every row of the stream's latest succeeded run (nothing is deleted
  while the stream has none).
Staging only ever reads those rows, so the transform publishes the same after retention.

Every raw table of the catalogue is covered, one set-based DELETE each, in its own
REPEATABLE READ transaction (the latest run and the rows deleted are read from one
snapshot). The run is recorded in ops.maintenance_runs with what was deleted and kept
per table, committed table by table.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql

from psops import catalogue
from psops.connectors.spec import Stream
from psops.db import scalar, warehouse_connection
from psops.settings import RAW_RETENTION_DAYS
from psops.transform.curated import latest_raw_cte, latest_succeeded_run

log = logging.getLogger(__name__)


class RetentionError(ValueError):
    """The retention setting is not usable."""


@dataclass(frozen=True)
class TableOutcome:
    table: str  # raw.<system>_<stream>
    deleted: int
    kept: int

    def line(self) -> str:
        return f"{self.table}: deleted {self.deleted}, kept {self.kept}"


@dataclass(frozen=True)
class RetentionReport:
    run_id: int
    days: int
    cutoff: datetime
    tables: tuple[TableOutcome, ...]

    @property
    def deleted(self) -> int:
        return sum(t.deleted for t in self.tables)

    @property
    def kept(self) -> int:
        return sum(t.kept for t in self.tables)

    def summary(self) -> str:
        head = (f"raw retention ({self.days} days, loaded before {self.cutoff:%Y-%m-%d %H:%M} "
                f"UTC): deleted {self.deleted} old versions, kept {self.kept} rows "
                f"in {len(self.tables)} raw tables")
        return "\n".join([head, *(f"  {t.line()}" for t in self.tables)])

    def as_dict(self) -> dict:
        """What the DAG's task returns (XCom): plain JSON values."""
        return {"maintenance_run_id": self.run_id, "retention_days": self.days,
                "cutoff": self.cutoff.isoformat(), "deleted": self.deleted, "kept": self.kept,
                "tables": {t.table: {"deleted": t.deleted, "kept": t.kept} for t in self.tables}}


def retention_days() -> int:
    """PSOPS_RAW_RETENTION_DAYS as a whole number of days, 0 or more."""
    text = RAW_RETENTION_DAYS.text()
    if not text.isdigit():
        raise RetentionError(f"{RAW_RETENTION_DAYS.name}={text!r} is not a whole number "
                             "of days (0 or more)")
    return int(text)


def _delete_incremental(conn, stream: Stream, cutoff: datetime) -> int:
    """Old rows that are neither their record's winning copy nor a copy without an
    update time loaded after it (the rule `<entity>.version_time_unparseable` reads
    those: deleting one would lift its quarantine). Only records with an old row are
    ranked, on (record_id, load_seq) alone: no payload goes through the sort."""
    table = sql.Identifier("raw", stream.raw_table)
    old_records = sql.SQL("record_id IN (SELECT record_id FROM {} WHERE loaded_at < %(cutoff)s)"
                          ).format(table)
    statement = latest_raw_cte(stream.raw_table, old_records, ("record_id", "load_seq")) + sql.SQL(
        "DELETE FROM {} r USING latest_raw l WHERE l.record_id = r.record_id "
        "AND r.loaded_at < %(cutoff)s AND r.load_seq <> l.load_seq "
        "AND NOT (r.source_updated_at IS NULL AND r.load_seq > l.load_seq)"
    ).format(table)
    return conn.execute(statement, {"cutoff": cutoff}).rowcount


def _delete_snapshot(conn, stream: Stream, cutoff: datetime) -> int:
    """Old rows outside the stream's latest succeeded run."""
    latest = latest_succeeded_run(conn, stream.system, stream.name)
    if latest is None:
        return 0
    statement = sql.SQL("DELETE FROM {} WHERE loaded_at < %(cutoff)s AND run_id <> %(latest)s"
                        ).format(sql.Identifier("raw", stream.raw_table))
    return conn.execute(statement, {"cutoff": cutoff, "latest": latest}).rowcount


def prune_stream(conn, stream: Stream, cutoff: datetime) -> TableOutcome | None:
    """Delete the stream's raw rows past retention (call inside a transaction); None
    when its raw table does not exist yet."""
    table = f"raw.{stream.raw_table}"
    if not scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (table,)):
        return None
    delete = _delete_snapshot if stream.snapshot else _delete_incremental
    deleted = delete(conn, stream, cutoff)
    kept = scalar(conn, sql.SQL("SELECT count(*) FROM {}").format(
        sql.Identifier("raw", stream.raw_table)))
    return TableOutcome(table, deleted, kept)


def _record_table(conn, run_id: int, outcome: TableOutcome) -> None:
    conn.execute(
        "UPDATE ops.maintenance_runs SET tables = tables || %s::jsonb, "
        "deleted = deleted + %s, kept = kept + %s WHERE id = %s",
        (json.dumps({outcome.table: {"deleted": outcome.deleted, "kept": outcome.kept}}),
         outcome.deleted, outcome.kept, run_id))


def _start_run(conn, dag_run_id: str | None, days: int) -> tuple[int, datetime]:
    return conn.execute(
        "INSERT INTO ops.maintenance_runs (kind, dag_run_id, status, retention_days, cutoff) "
        "VALUES ('raw_retention', %s, 'running', %s, now() - make_interval(days => %s)) "
        "RETURNING id, cutoff", (dag_run_id, days, days)).fetchone()


def _finish_run(conn, run_id: int, error: BaseException | None = None) -> None:
    conn.execute(
        "UPDATE ops.maintenance_runs SET status = %s, finished_at = now(), error = %s "
        "WHERE id = %s",
        ("failed" if error else "succeeded",
         f"{type(error).__name__}: {error}" if error else None, run_id))


def run_raw_retention(dag_run_id: str | None = None, days: int | None = None) -> RetentionReport:
    """Prune every raw table of the catalogue (N: `days`, default PSOPS_RAW_RETENTION_DAYS);
    a failure marks the run failed, keeping what the tables before it deleted."""
    days = retention_days() if days is None else days
    outcomes = []
    with warehouse_connection(autocommit=True) as conn:
        run_id, cutoff = _start_run(conn, dag_run_id, days)
        try:
            for stream in catalogue.streams():
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    outcome = prune_stream(conn, stream, cutoff)
                    if outcome is None:
                        log.info("raw.%s does not exist yet: nothing to prune", stream.raw_table)
                        continue
                    _record_table(conn, run_id, outcome)
                log.info("%s", outcome.line())
                outcomes.append(outcome)
        except BaseException as err:
            _finish_run(conn, run_id, err)
            raise
        _finish_run(conn, run_id)
    report = RetentionReport(run_id, days, cutoff, tuple(outcomes))
    log.info("%s", report.summary())
    return report
