"""Raw -> staging (typed, latest version of each record) -> curated (minus quarantine).

Staging, set-based, from include/sql/curated/<table>.sql (a SELECT over `latest_raw`,
the winning raw copy of each record: latest source_updated_at, then highest load_seq):
- incremental entities (CRM, PSA, ERP): only raw rows loaded since the last transform
  (load_seq above the high-water mark in ops.transform_watermarks), upserted into
  staging, a stored row replaced only by a newer version; idempotent;
- snapshot entities (HRIS): rebuilt from the latest succeeded ingest run of the stream.

Curated is then synchronised with staging by a set-based diff: rows that changed or are
now quarantined are deleted, missing non-quarantined rows inserted, unchanged rows left
alone (so a re-run writes nothing). The diff covers only the keys noted in
ops.curated_pending since the last publish (staged, re-pointed at another employee, or
quarantine changed), or every row of an entity marked in ops.curated_full_sync
(migration 0015 says when); both give the same curated tables.

The entities come from psops.catalogue (the connector specs). An entity added there has
no migration: its staging table is created from the shape of its SQL file's result (key
= primary key) and its curated table like it, in the stage step's transaction.
"""

from __future__ import annotations

import logging

from psycopg import sql
from psycopg.rows import dict_row

from psops.catalogue import Entity
from psops.connectors.raw_loader import ensure_raw_table
from psops.db import scalar
from psops.transform.rules import Catalogue, load_catalogue
from psops.transform.sql_files import read_sql

log = logging.getLogger(__name__)

#: entities whose PSA user is resolved to an HRIS employee by e-mail
EMPLOYEE_RESOLVED_ENTITIES = ("time_entry", "expense", "assignment")


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


def _winners(raw_table: str, condition: sql.Composable, selected: sql.Composable) -> sql.Composed:
    """The one definition of "latest": among the raw rows meeting `condition`, each
    record's copy with the latest source_updated_at, then the highest load_seq."""
    return sql.SQL(
        "SELECT DISTINCT ON (record_id) {} FROM raw.{} WHERE {} "
        "ORDER BY record_id, source_updated_at DESC NULLS LAST, load_seq DESC"
    ).format(selected, sql.Identifier(raw_table), condition)


def latest_raw_cte(raw_table: str, condition: sql.Composable,
                   columns: tuple[str, ...] = ()) -> sql.Composed:
    """`WITH latest_raw AS (...)`: the winning copy of each record among the raw rows
    meeting `condition` (_winners), for staging and the raw retention. `columns`: what it
    selects, every column when empty (retention ranks record_id and load_seq only,
    keeping payloads out of the sort)."""
    selected = sql.SQL(", ").join(map(sql.Identifier, columns)) if columns else sql.SQL("*")
    return sql.SQL("WITH latest_raw AS ({}) ").format(_winners(raw_table, condition, selected))


def _latest_raw_by_seq_cte(raw_table: str, condition: sql.Composable) -> sql.Composed:
    """The same rows as latest_raw_cte, found as the winners' load_seq first, then a join:
    a plan PostgreSQL can run in parallel workers, typing included (DISTINCT ON over the
    payloads runs the typing above the sort, in one process)."""
    return sql.SQL(
        "WITH latest_raw AS (SELECT r.* FROM raw.{} r WHERE {} AND r.load_seq IN ({})) "
    ).format(sql.Identifier(raw_table), condition,
             _winners(raw_table, condition, sql.SQL("load_seq")))


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
    ensure_raw_table(conn, entity.raw_table)
    staging = sql.Identifier("staging", entity.table)
    conn.execute(sql.SQL("CREATE TABLE {staging} AS {cte} SELECT * FROM ({body}) x WITH NO DATA")
                 .format(staging=staging, cte=latest_raw_cte(entity.raw_table, sql.SQL("false")),
                         body=_file_select(entity.table)), {})
    conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})")
                 .format(staging, sql.Identifier(entity.key)))
    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING ALL)")
                 .format(sql.Identifier("curated", entity.table), staging))
    mark_full_sync(conn, entity.name, "new entity")
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


#: a stage of more new raw rows than this share of the staged ones (and more than
#: KEYED_PUBLISH_MIN_ROWS) is published by comparing every row: keys no longer pay
KEYED_PUBLISH_MAX_SHARE = 0.2
KEYED_PUBLISH_MIN_ROWS = 1000


def mark_full_sync(conn, entity_name: str, reason: str) -> None:
    """The next publish compares every row of the entity ('*': of every entity)."""
    conn.execute(
        "INSERT INTO ops.curated_full_sync (entity, reason) VALUES (%s, %s) "
        "ON CONFLICT (entity) DO UPDATE SET reason = EXCLUDED.reason, marked_at = now()",
        (entity_name, reason))


def _note_pending(entity: Entity, changing: sql.Composable) -> sql.Composed:
    """`changing` (an INSERT or UPDATE ... RETURNING the entity's key) with the keys it
    returns noted in ops.curated_pending; the statement returns their number."""
    return sql.SQL(
        "WITH changed AS ({changing}), noted AS ("
        "INSERT INTO ops.curated_pending (entity, record_key) "
        "SELECT {entity}, c.{key}::text FROM changed c ON CONFLICT DO NOTHING) "
        "SELECT count(*) FROM changed"
    ).format(changing=changing, entity=sql.Literal(entity.name), key=sql.Identifier(entity.key))


def stage_snapshot(conn, entity: Entity) -> int:
    """Rebuild staging.<table> from the latest succeeded run of the HRIS stream."""
    table = sql.Identifier("staging", entity.table)
    conn.execute(sql.SQL("DELETE FROM {}").format(table))
    mark_full_sync(conn, entity.name, "snapshot entity")
    return _stage_latest_run(conn, entity, table, _columns(conn, "staging", entity.table),
                             _file_select(entity.table))


def stage_cost_rates(conn, employee: Entity) -> int:
    """confidential.employee_cost_rates from the same HRIS employees snapshot."""
    conn.execute("DELETE FROM confidential.employee_cost_rates")
    return _stage_latest_run(conn, employee, sql.Identifier("confidential", "employee_cost_rates"),
                             ["employee_id", "cost_rate", "run_id"],
                             _file_select("employee_cost_rates"))


def _last_staged_seq(conn, entity: Entity) -> int:
    """The raw load_seq up to which the entity was staged (0: never)."""
    return scalar(conn, "SELECT last_load_seq FROM ops.transform_watermarks WHERE entity = %s",
                  (entity.name,), default=0)


def _high_water_bounds(conn, entity: Entity) -> tuple[int, int]:
    """(low, high]: raw rows to stage now. `high` stays below any row of a still running
    ingest run, whose rows (lower load_seq, later commit) must not be skipped for ever."""
    low = _last_staged_seq(conn, entity)
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
    in_range = sql.SQL("load_seq > %(low)s AND load_seq <= %(high)s")
    params = {"low": low, "high": high}
    keyed = _keys_pay(conn, entity, high - low)
    if keyed:
        source, cte = _file_select(entity.table), latest_raw_cte(entity.raw_table, in_range)
    else:  # many rows: typed by parallel workers into a scratch table first
        # Statistics of a raw table loaded moments ago are missing until autovacuum gets
        # to it; without them the planner sees a small table and plans no workers.
        conn.execute(sql.SQL("ANALYZE raw.{}").format(sql.Identifier(entity.raw_table)))
        conn.execute(sql.SQL(
            "CREATE TEMP TABLE stage_batch ON COMMIT DROP AS {cte} SELECT * FROM ({body}) x"
        ).format(cte=_latest_raw_by_seq_cte(entity.raw_table, in_range),
                 body=_file_select(entity.table)), params)
        source, cte = sql.SQL("SELECT * FROM stage_batch"), sql.SQL("")
    upsert = _insert_from_file(
        sql.Identifier("staging", entity.table), columns, source, cte,
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
    if keyed:
        (changed,) = conn.execute(
            _note_pending(entity, upsert + sql.SQL(" RETURNING s.{}").format(
                sql.Identifier(entity.key))), params).fetchone()
    else:
        changed = conn.execute(upsert, params).rowcount
        conn.execute("DROP TABLE stage_batch")
        mark_full_sync(conn, entity.name, f"{high - low} raw rows staged at once")
    conn.execute(
        "INSERT INTO ops.transform_watermarks (entity, last_load_seq) VALUES (%s, %s) "
        "ON CONFLICT (entity) DO UPDATE SET last_load_seq = EXCLUDED.last_load_seq, updated_at = now()",
        (entity.name, high),
    )
    return changed


def _keys_pay(conn, entity: Entity, new_raw_rows: int) -> bool:
    """Publish by keys (True) or compare every row (False): see KEYED_PUBLISH_MAX_SHARE."""
    if new_raw_rows <= KEYED_PUBLISH_MIN_ROWS:
        return True
    staged = scalar(conn, sql.SQL("SELECT count(*) FROM {}").format(
        sql.Identifier("staging", entity.table)))
    return new_raw_rows <= KEYED_PUBLISH_MAX_SHARE * staged


def resolve_employees(conn, catalogue: Catalogue, staged_up_to: dict[str, int]) -> int:
    """Re-point PSA users at HRIS employees after the e-mail mapping changed (set-based,
    touching only rows whose resolution changed, whose keys publish then compares).
    `staged_up_to`: entity -> the last load_seq staged before this run; later rows were
    staged against the new mapping already."""
    changed = 0
    for name in EMPLOYEE_RESOLVED_ENTITIES:
        entity = catalogue.entity(name)
        names = {"t": sql.Identifier("staging", entity.table),
                 "key": sql.Identifier(entity.key)}
        params = {"up_to": staged_up_to.get(name, 0)}
        changed += scalar(conn, _note_pending(entity, sql.SQL(
            "UPDATE {t} t SET employee_id = m.employee_id FROM staging.employee_by_email m "
            "WHERE m.email_lower = lower(t.user_email) AND t.load_seq <= %(up_to)s "
            "AND t.employee_id IS DISTINCT FROM m.employee_id RETURNING t.{key}"
        ).format(**names)), params)
        changed += scalar(conn, _note_pending(entity, sql.SQL(
            "UPDATE {t} t SET employee_id = NULL WHERE t.employee_id IS NOT NULL "
            "AND t.load_seq <= %(up_to)s AND NOT EXISTS (SELECT 1 FROM staging.employee_by_email m "
            "WHERE m.email_lower = lower(t.user_email)) RETURNING t.{key}"
        ).format(**names)), params)
    return changed


def stage_all(conn, catalogue: Catalogue | None = None) -> dict[str, int]:
    """Stage every entity; returns rows written per entity. Call inside a transaction."""
    catalogue = catalogue or load_catalogue()
    for entity in catalogue.entities.values():
        ensure_entity_tables(conn, entity)
    written: dict[str, int] = {}
    snapshots = [e for e in catalogue.entities.values() if e.load == "snapshot"]
    employees_before = _employee_mapping(conn)
    for entity in snapshots:  # HRIS first: PSA users resolve against employees
        written[entity.name] = stage_snapshot(conn, entity)
    stage_cost_rates(conn, catalogue.entity("employee"))
    staged_up_to = {}
    for entity in catalogue.entities.values():
        if entity.load == "incremental":
            staged_up_to[entity.name] = _last_staged_seq(conn, entity)
            written[entity.name] = stage_incremental(conn, entity)
    # Rows staged now resolved their user against the new mapping already; the others
    # need it only when the mapping changed (a scan of every time entry otherwise).
    written["employee_resolution_changes"] = (
        resolve_employees(conn, catalogue, staged_up_to)
        if _employee_mapping(conn) != employees_before else 0)
    return written


def _employee_mapping(conn) -> set[tuple[str, str]]:
    """(lower-case e-mail, employee_id) pairs PSA users resolve by."""
    return set(conn.execute("SELECT email_lower, employee_id FROM staging.employee_by_email"))


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


def _in_publish_keys(alias: str, entity: Entity) -> sql.Composed:
    """`AND` the row of `alias` is one of the keys publish took (temporary table
    publish_keys, filled by publish_curated)."""
    return sql.SQL("AND {alias}.{key}::text IN (SELECT record_key FROM publish_keys)").format(
        alias=sql.Identifier(alias), key=sql.Identifier(entity.key))


def _publish_entity(conn, entity: Entity, *, keyed: bool) -> dict[str, int]:
    """Synchronise curated.<table> of one entity with staging minus quarantine, for the
    keys publish took (`keyed`) or every row."""
    names = {
        "c": sql.Identifier("curated", entity.table),
        "s": sql.Identifier("staging", entity.table),
        "key": sql.Identifier(entity.key),
    }
    only_c = _in_publish_keys("c", entity) if keyed else sql.SQL("")
    only_s = _in_publish_keys("s", entity) if keyed else sql.SQL("")
    params = {"entity": entity.name}
    deleted = conn.execute(sql.SQL(
        "DELETE FROM {c} c WHERE (NOT EXISTS (SELECT 1 FROM {s} s WHERE s.{key} = c.{key} "
        "AND ROW(s.*) IS NOT DISTINCT FROM ROW(c.*)) OR {quarantined}) {only_c}"
    ).format(quarantined=_quarantined("c", entity), only_c=only_c, **names), params).rowcount
    inserted = conn.execute(sql.SQL(
        "INSERT INTO {c} SELECT s.* FROM {s} s WHERE NOT EXISTS "
        "(SELECT 1 FROM {c} c WHERE c.{key} = s.{key}) AND NOT {quarantined} {only_s}"
    ).format(quarantined=_quarantined("s", entity), only_s=only_s, **names), params).rowcount
    return {"deleted": deleted, "inserted": inserted}


def _take_full_sync_marks(conn, full: bool) -> set[str] | None:
    """Consume ops.curated_full_sync: the entities to compare row by row, None for all."""
    marked = {entity for (entity,) in conn.execute(
        "DELETE FROM ops.curated_full_sync RETURNING entity")}
    return None if full or "*" in marked else marked


def publish_curated(conn, catalogue: Catalogue | None = None, *,
                    full: bool = False) -> dict[str, dict[str, int]]:
    """Synchronise every curated.<table> with staging minus quarantine (set-based diff)
    over the keys pending since the last publish, or every row of the entities marked
    for a full sync (all of them with `full`). Consumes what it synchronised. Call inside
    a transaction (the keys of an entity sit in a temporary table dropped at commit)."""
    catalogue = catalogue or load_catalogue()
    full_entities = _take_full_sync_marks(conn, full)
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS publish_keys (record_key text PRIMARY KEY) "
                 "ON COMMIT DROP")
    counts = {}
    for entity in catalogue.entities.values():
        conn.execute("TRUNCATE publish_keys")
        conn.execute(
            "WITH taken AS (DELETE FROM ops.curated_pending WHERE entity = %s "
            "RETURNING record_key) INSERT INTO publish_keys SELECT record_key FROM taken",
            (entity.name,))
        conn.execute("ANALYZE publish_keys")  # a handful of keys: index lookups, no scan
        compare_all = full_entities is None or entity.name in full_entities
        counts[entity.name] = _publish_entity(conn, entity, keyed=not compare_all)
    conn.execute("DELETE FROM ops.curated_pending WHERE entity <> ALL(%s)",  # no curated table
                 (list(catalogue.entities),))
    return counts
