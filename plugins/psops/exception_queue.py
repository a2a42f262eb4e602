"""The exception queue `ops.exceptions`: the one owner of its lifecycle.

Each check (a quality rule of the transform, a write-back check such as
`deal.setup_invalid`) owns its rule id. Every time it runs it hands over the records
that fail it now, and `sync_rule`:

* opens a row for a record not yet open under the rule (one OPEN row per
  (rule_id, entity, record_key), enforced by a partial unique index);
* bumps the open row of a record seen again (last_seen_at, times_seen, details,
  severity, last_as_of, last_transform_run_id);
* resolves the rule's open rows whose record no longer fails, naming the run that
  checked in `resolved_by` (a rule resolves only its own rows; for a transform rule the
  transform run is also in last_transform_run_id).

A record with an open `error` row is quarantined (view ops.quarantined_records).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class ExceptionRule:
    rule_id: str
    severity: str  # 'error' quarantines the record, 'warning' only reports it
    source_system: str
    entity: str


@dataclass(frozen=True)
class SyncOutcome:
    failing: int
    opened: int
    resolved: int


_SYNC_RULE = """
WITH hits AS ({failing}),
opened AS (
    INSERT INTO ops.exceptions AS e
        (rule_id, severity, source_system, entity, record_key, details,
         first_seen_at, last_seen_at, status, first_as_of, last_as_of, last_transform_run_id)
    SELECT %(rule_id)s, %(severity)s, %(source_system)s, %(entity)s, h.record_key, h.details,
           now(), now(), 'open', %(as_of)s, %(as_of)s, %(run_id)s
    FROM hits h
    ON CONFLICT (rule_id, entity, record_key) WHERE status = 'open'
    DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at,
                  details = EXCLUDED.details,
                  severity = EXCLUDED.severity,
                  times_seen = e.times_seen + 1,
                  last_as_of = EXCLUDED.last_as_of,
                  last_transform_run_id = EXCLUDED.last_transform_run_id
    RETURNING (xmax = 0) AS inserted
),
resolved AS (
    UPDATE ops.exceptions e
    SET status = 'resolved', resolved_at = now(), resolved_by = %(checked_by)s,
        last_transform_run_id = coalesce(%(run_id)s, e.last_transform_run_id)
    WHERE e.rule_id = %(rule_id)s AND e.entity = %(entity)s AND e.status = 'open'
      AND NOT EXISTS (SELECT 1 FROM hits h WHERE h.record_key = e.record_key)
    RETURNING 1
)
SELECT (SELECT count(*) FROM opened) AS failing,
       (SELECT count(*) FROM opened WHERE inserted) AS opened,
       (SELECT count(*) FROM resolved) AS resolved
"""

_GIVEN_RECORDS = sql.SQL(
    "SELECT key AS record_key, value AS details FROM jsonb_each(%(given)s::jsonb)")


def sync_rule(conn, rule: ExceptionRule, failing: sql.Composable | Mapping[str, dict],
              as_of: date, *, checked_by: str, run_id: int | None = None) -> SyncOutcome:
    """Bring the rule's rows in line with what fails now. `failing` is either a query
    returning (record_key, details) or the failing records as {record_key: details};
    `checked_by` names the run that checked (kept as `resolved_by` on the rows it
    resolves); `run_id` is the transform run (ops.transform_runs.id) when a transform
    checks."""
    params = {"rule_id": rule.rule_id, "severity": rule.severity,
              "source_system": rule.source_system, "entity": rule.entity,
              "as_of": as_of, "run_id": run_id, "checked_by": checked_by}
    if isinstance(failing, sql.Composable):
        hits = failing
    else:
        hits = _GIVEN_RECORDS
        params["given"] = Jsonb(dict(failing))
    statement = sql.SQL(_SYNC_RULE).format(failing=hits)
    with conn.cursor(row_factory=class_row(SyncOutcome)) as cur:
        return cur.execute(statement, params).fetchone()
