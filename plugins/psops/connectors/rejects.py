"""Records a stream could not load as they are: stored in ops.ingest_rejects, and raised
in the exception queue under the rule `<entity>.ingest_rejected` (severity error: an
older copy of the record in curated is quarantined, since it is no longer the source's).

The record key of an exception is the record's primary key, or `unkeyed:<md5 of its
text, 16 hex digits>` for a record without one; its details name the reject row
(`reject_id`), the ingest run and the reason. An exception resolves:
- incremental stream: when a later run loads the record cleanly (same key in raw);
- snapshot stream: when a later run (a complete snapshot) does not reject it again.
A keyless reject of an incremental stream is never loaded cleanly under its synthetic
key: it stays open until someone resolves it.
"""

from __future__ import annotations

from datetime import date

from psycopg import sql

from psops import catalogue, exception_queue
from psops.connectors.raw_loader import Reject
from psops.connectors.spec import Stream
from psops.exception_queue import ExceptionRule, SyncOutcome

REJECTED = "ingest_rejected"

_FAILING = """
SELECT DISTINCT ON (record_key) record_key, details
FROM (
    SELECT coalesce(j.record_key, 'unkeyed:' || left(md5(j.raw_text), 16)) AS record_key,
           jsonb_build_object('reject_id', j.id, 'ingest_run_id', j.ingest_run_id,
                              'stream', j.stream, 'reason', j.reason) AS details,
           0 AS carried, j.id
    FROM ops.ingest_rejects j
    WHERE j.ingest_run_id = {run_id}
    UNION ALL
    -- an incremental stream re-reads only what changed: a record rejected earlier and
    -- not loaded cleanly by this run still fails
    SELECT e.record_key, e.details, 1, 0
    FROM ops.exceptions e
    WHERE {incremental} AND e.rule_id = %(rule_id)s AND e.entity = %(entity)s
      AND e.status = 'open'
      AND NOT EXISTS (SELECT 1 FROM {raw} r WHERE r.run_id = {run_id}
                      AND r.record_id = e.record_key)
) failing
ORDER BY record_key, carried, id DESC
"""


def rule_of(stream: Stream) -> ExceptionRule:
    entity = stream.entity
    return ExceptionRule(f"{entity.name}.{REJECTED}", "error", stream.system, entity.name)


def record_rejects(conn, stream: Stream, run_id: int, rejects: list[Reject],
                   as_of: date) -> SyncOutcome:
    """Store this run's rejects and bring the stream's exception rows in line (inside
    the run's load transaction)."""
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO ops.ingest_rejects (ingest_run_id, system, stream, record_key, "
            "reason, raw_text) VALUES (%s, %s, %s, %s, %s, %s)",
            [(run_id, stream.system, stream.name, r.record_key, r.reason, r.raw_text)
             for r in rejects])
    failing = sql.SQL(_FAILING).format(
        run_id=sql.Literal(run_id), incremental=sql.Literal(not stream.snapshot),
        raw=sql.Identifier("raw", stream.raw_table))
    return exception_queue.sync_rule(
        conn, rule_of(stream), failing, as_of,
        checked_by=f"{catalogue.ingest_dag_id(stream.system)} (ingest run {run_id})")
