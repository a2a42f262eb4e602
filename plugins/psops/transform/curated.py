"""Raw -> staging (typed, latest version of each record) -> curated (minus quarantine).

Staging, set-based, from include/sql/curated/<table>.sql (a SELECT over `latest_raw`,
the winning raw copy of each record: latest source_updated_at, then highest load_seq):
- incremental entities (CRM, PSA, ERP): only raw rows loaded since the last transform
  (load_seq above the high-water mark in ops.transform_watermarks), upserted into
  staging, a stored row replaced only by a newer version; idempotent;
- snapshot entities (HRIS): rebuilt from the latest succeeded ingest run of the stream.

Curated is then synchronised with staging by a set-based diff: rows that changed or are
now quarantined are deleted, missing non-quarantined rows inserted, unchanged rows left
alone (so a re-run writes nothing).

The entities come from psops.catalogue (the connector specs). An entity added there has
no migration: its staging table is created from the shape of its SQL file's result (key
= primary key) and its curated table like it, in the stage step's transaction.
"""

from __future__ import annotations

import logging

from psycopg import sql
from psycopg.rows import dict_row

from psops.catalogue import Entity
from psops.connectors.raw_loader import raw_table_ddl
from psops.db import scalar
from psops.transform.rules import Catalogue, load_catalogue
from psops.transform.sql_files import read_sql

log = logging.getLogger(__name__)

#: staging tables whose PSA user is resolved to an HRIS employee by e-mail
EMPLOYEE_RESOLVED_TABLES = ("time_entries", "expenses", "assignments")


def _table_exists(conn, schema: str, table: str) -> bool:
    return scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{table}",))


def _columns(conn, schema: str, table: str) -> list[str]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, table)).fetchall()
    return [row["column_name"] for row in rows]


def latest_succeeded_run(conn, system: str, stream: str) -> int | None:
    return scalar(
        conn,
        "SELECT id FROM ops.ingest_runs WHERE system = %s AND stream = %s AND status = 'succeeded' "
        "ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1",
        (system, stream))


def latest_raw_cte(raw_table: str, condition: sql.Composable,
                   columns: tuple[str, ...] = ()) -> sql.Composed:
    """`WITH latest_raw AS (...)`: the winning copy of each record among the raw rows
    meeting `condition` (latest source_updated_at, then highest load_seq), the one
    definition of "latest" (staging and the raw retention). `columns`: what it selects,
    every column when empty (retention ranks record_id and load_seq only, keeping
    payloads out of the sort)."""
    selected = sql.SQL(", ").join(map(sql.Identifier, columns)) if columns else sql.SQL("*")
    return sql.SQL(
        "WITH latest_raw AS (SELECT DISTINCT ON (record_id) {} FROM raw.{} WHERE {} "
        "ORDER BY record_id, source_updated_at DESC NULLS LAST, load_seq DESC) "
    ).format(selected, sql.Identifier(raw_table), condition)


def _file_select(name: str) -> sql.SQL:
    """include/sql/curated/<name>.sql as part of a statement run with bind parameters:
    the file takes none, so its `%` are literal."""
    return sql.SQL(read_sql(f"curated/{name}.sql").replace("%", "%%"))


def _insert_from_file(target: sql.Composable, columns: list[str], file_select: sql.SQL,
                      cte: sql.Composable) -> sql.Composed:
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    return sql.SQL("INSERT INTO {target} AS s ({cols}) {cte} SELECT {cols} FROM ({body}) x").format(
        target=target, cols=cols, cte=cte, body=file_select
    )


def ensure_entity_tables(conn, entity: Entity) -> bool:
    """Create staging.<table> and curated.<table> of an entity that has none yet (and
    its raw table, whose columns the SQL file reads); True when created."""
    if _table_exists(conn, "staging", entity.table):
        return False
    conn.execute(raw_table_ddl(entity.raw_table))
    staging = sql.Identifier("staging", entity.table)
    conn.execute(sql.SQL("CREATE TABLE {staging} AS {cte} SELECT * FROM ({body}) x WITH NO DATA")
                 .format(staging=staging, cte=latest_raw_cte(entity.raw_table, sql.SQL("false")),
                         body=_file_select(entity.table)), {})
    conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})")
                 .format(staging, sql.Identifier(entity.key)))
    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING ALL)")
                 .format(sql.Identifier("curated", entity.table), staging))
    log.info("created staging.%s and curated.%s for the new entity %s",
             entity.table, entity.table, entity.name)
    return True


def _stage_latest_run(conn, entity: Entity, target: sql.Composable, columns: list[str],
                      file_select: sql.SQL) -> int:
    """Insert into `target` the file's rows over the latest succeeded run of the stream."""
    run_id = latest_succeeded_run(conn, entity.source_system, entity.stream)
    if run_id is None or not _table_exists(conn, "raw", entity.raw_table):
        return 0
    cte = latest_raw_cte(entity.raw_table, sql.SQL("run_id = %(run_id)s"))
    statement = _insert_from_file(target, columns, file_select, cte)
    return conn.execute(statement, {"run_id": run_id}).rowcount


def stage_snapshot(conn, entity: Entity) -> int:
    """Rebuild staging.<table> from the latest succeeded run of the HRIS stream."""
    table = sql.Identifier("staging", entity.table)
    conn.execute(sql.SQL("DELETE FROM {}").format(table))
    return _stage_latest_run(conn, entity, table, _columns(conn, "staging", entity.table),
                             _file_select(entity.table))


def stage_cost_rates(conn, employee: Entity) -> int:
    """confidential.employee_cost_rates from the same HRIS employees snapshot."""
    conn.execute("DELETE FROM confidential.employee_cost_rates")
    return _stage_latest_run(conn, employee, sql.Identifier("confidential", "employee_cost_rates"),
                             ["employee_id", "cost_rate", "run_id"],
                             _file_select("employee_cost_rates"))


def _high_water_bounds(conn, entity: Entity) -> tuple[int, int]:
    """(low, high]: raw rows to stage now. `high` stays below any row of a still running
    ingest run, whose rows (lower load_seq, later commit) must not be skipped for ever."""
    low = scalar(conn, "SELECT last_load_seq FROM ops.transform_watermarks WHERE entity = %s",
                 (entity.name,), default=0)
    query = sql.SQL(
        """SELECT coalesce(max(r.load_seq), %(low)s)
           FROM raw.{t} r
           WHERE r.load_seq > %(low)s
             AND r.load_seq < coalesce(
                   (SELECT min(x.load_seq) FROM raw.{t} x
                    JOIN ops.ingest_runs ir ON ir.id = x.run_id AND ir.status = 'running'
                    WHERE x.load_seq > %(low)s),
                   9223372036854775807)"""
    ).format(t=sql.Identifier(entity.raw_table))
    high = scalar(conn, query, {"low": low})
    return low, high


def stage_incremental(conn, entity: Entity) -> int:
    if not _table_exists(conn, "raw", entity.raw_table):
        return 0
    low, high = _high_water_bounds(conn, entity)
    if high <= low:
        return 0
    columns = _columns(conn, "staging", entity.table)
    cte = latest_raw_cte(entity.raw_table,
                         sql.SQL("load_seq > %(low)s AND load_seq <= %(high)s"))
    statement = _insert_from_file(
        sql.Identifier("staging", entity.table), columns, _file_select(entity.table), cte,
    ) + sql.SQL(
        " ON CONFLICT ({key}) DO UPDATE SET {sets} "
        "WHERE (coalesce(EXCLUDED.source_updated_at, '-infinity'), EXCLUDED.load_seq) "
        "> (coalesce(s.source_updated_at, '-infinity'), s.load_seq)"
    ).format(
        key=sql.Identifier(entity.key),
        sets=sql.SQL(", ").join(
            sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c))
            for c in columns if c != entity.key
        ),
    )
    changed = conn.execute(statement, {"low": low, "high": high}).rowcount
    conn.execute(
        "INSERT INTO ops.transform_watermarks (entity, last_load_seq) VALUES (%s, %s) "
        "ON CONFLICT (entity) DO UPDATE SET last_load_seq = EXCLUDED.last_load_seq, updated_at = now()",
        (entity.name, high),
    )
    return changed


def resolve_employees(conn) -> int:
    """Re-point PSA users at HRIS employees after an HRIS snapshot changed (set-based,
    touching only rows whose resolution changed)."""
    changed = 0
    for table in EMPLOYEE_RESOLVED_TABLES:
        t = sql.Identifier("staging", table)
        changed += conn.execute(sql.SQL(
            "UPDATE {} t SET employee_id = m.employee_id FROM staging.employee_by_email m "
            "WHERE m.email_lower = lower(t.user_email) AND t.employee_id IS DISTINCT FROM m.employee_id"
        ).format(t)).rowcount
        changed += conn.execute(sql.SQL(
            "UPDATE {} t SET employee_id = NULL WHERE t.employee_id IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM staging.employee_by_email m WHERE m.email_lower = lower(t.user_email))"
        ).format(t)).rowcount
    return changed


def stage_all(conn, catalogue: Catalogue | None = None) -> dict[str, int]:
    """Stage every entity; returns rows written per entity. Call inside a transaction."""
    catalogue = catalogue or load_catalogue()
    for entity in catalogue.entities.values():
        ensure_entity_tables(conn, entity)
    written: dict[str, int] = {}
    snapshots = [e for e in catalogue.entities.values() if e.load == "snapshot"]
    for entity in snapshots:  # HRIS first: PSA users resolve against employees
        written[entity.name] = stage_snapshot(conn, entity)
    stage_cost_rates(conn, catalogue.entity("employee"))
    for entity in catalogue.entities.values():
        if entity.load == "incremental":
            written[entity.name] = stage_incremental(conn, entity)
    written["employee_resolution_changes"] = resolve_employees(conn)
    return written


def row_counts(conn, schema: str, catalogue: Catalogue | None = None) -> dict[str, int]:
    """Entity -> rows of its table in `schema` (staging or curated)."""
    catalogue = catalogue or load_catalogue()
    counts = {}
    for entity in catalogue.entities.values():
        query = sql.SQL("SELECT count(*) AS n FROM {}").format(
            sql.Identifier(schema, entity.table))
        counts[entity.name] = scalar(conn, query)
    return counts


def _quarantined(alias: str, entity: Entity) -> sql.Composed:
    """True for a row of `alias` whose record is quarantined (parameter: entity)."""
    return sql.SQL(
        "EXISTS (SELECT 1 FROM ops.quarantined_records q "
        "WHERE q.entity = %(entity)s AND q.record_key = {alias}.{key}::text)"
    ).format(alias=sql.Identifier(alias), key=sql.Identifier(entity.key))


def publishable_counts(conn, catalogue: Catalogue | None = None) -> dict[str, int]:
    """Rows each curated table will hold once published: staged minus quarantined."""
    catalogue = catalogue or load_catalogue()
    counts = {}
    for entity in catalogue.entities.values():
        query = sql.SQL("SELECT count(*) FROM {s} s WHERE NOT {quarantined}").format(
            s=sql.Identifier("staging", entity.table), quarantined=_quarantined("s", entity))
        counts[entity.name] = scalar(conn, query, {"entity": entity.name})
    return counts


def _publish_entity(conn, entity: Entity) -> dict[str, int]:
    """Synchronise curated.<table> of one entity with staging minus quarantine."""
    names = {
        "c": sql.Identifier("curated", entity.table),
        "s": sql.Identifier("staging", entity.table),
        "key": sql.Identifier(entity.key),
    }
    params = {"entity": entity.name}
    deleted = conn.execute(sql.SQL(
        "DELETE FROM {c} c WHERE NOT EXISTS (SELECT 1 FROM {s} s WHERE s.{key} = c.{key} "
        "AND ROW(s.*) IS NOT DISTINCT FROM ROW(c.*)) OR {quarantined}"
    ).format(quarantined=_quarantined("c", entity), **names), params).rowcount
    inserted = conn.execute(sql.SQL(
        "INSERT INTO {c} SELECT s.* FROM {s} s WHERE NOT EXISTS "
        "(SELECT 1 FROM {c} c WHERE c.{key} = s.{key}) AND NOT {quarantined}"
    ).format(quarantined=_quarantined("s", entity), **names), params).rowcount
    return {"deleted": deleted, "inserted": inserted}


def publish_curated(conn, catalogue: Catalogue | None = None) -> dict[str, dict[str, int]]:
    """Synchronise every curated.<table> with staging minus quarantine (set-based diff)."""
    catalogue = catalogue or load_catalogue()
    return {entity.name: _publish_entity(conn, entity) for entity in catalogue.entities.values()}
