"""The soak's invariants, checked against the sandbox's truth (GET /_sandbox/truth) and
its write log (GET /_sandbox/writes) after every cycle. Each returns the problems found
as one line each: which invariant, which stream or key, which records."""

from __future__ import annotations

from collections import Counter, defaultdict

from psycopg import sql

from psops import catalogue
from psops.db import warehouse_connection

SHOWN = 5  # record ids named per problem


def _ids(items) -> str:
    items = sorted(items)
    more = f" (+{len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(map(str, items[:SHOWN])) + more


def _raw_versions(conn, stream) -> set[tuple[str, int]]:
    rows = conn.execute(sql.SQL(
        "SELECT DISTINCT record_id, (extract(epoch FROM source_updated_at) * 1000)::bigint "
        "FROM {}").format(sql.Identifier("raw", stream.raw_table))).fetchall()
    return set(rows)


def _curated_versions(conn, entity) -> dict[str, int | None]:
    rows = conn.execute(sql.SQL(
        "SELECT {key}::text, (extract(epoch FROM source_updated_at) * 1000)::bigint "
        "FROM {table}").format(key=sql.Identifier(entity.key),
                               table=sql.Identifier("curated", entity.table))).fetchall()
    return dict(rows)


def _quarantined(conn) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for entity, key in conn.execute("SELECT entity, record_key FROM ops.quarantined_records"):
        out[entity].add(key)
    return out


def _rejects_present(conn) -> bool:
    return conn.execute("SELECT to_regclass('ops.ingest_rejects')").fetchone()[0] is not None


def _rejected_now(conn, stream) -> set[str]:
    """Keys of `stream` whose latest sighting was a reject: the latest ingest run that
    saw the record (loaded it into raw or stored it in ops.ingest_rejects) rejected it.
    A record rejected once and loaded cleanly by a later run is not among them."""
    if not _rejects_present(conn):
        return set()
    rows = conn.execute(sql.SQL(
        "SELECT j.record_key FROM ops.ingest_rejects j "
        "WHERE j.system = %s AND j.stream = %s AND j.record_key IS NOT NULL "
        "GROUP BY j.record_key "
        "HAVING max(j.ingest_run_id) > coalesce((SELECT max(r.run_id) FROM {raw} r "
        "WHERE r.record_id = j.record_key), 0)").format(
        raw=sql.Identifier("raw", stream.raw_table)), (stream.system, stream.name))
    return {key for (key,) in rows}


def check_raw_and_curated(conn, truth: dict) -> tuple[int, list[str]]:
    """Every source record's latest version is in raw (unless that version was rejected)
    and, unless quarantined or rejected, in curated at that version."""
    checked, problems = 0, []
    quarantined = _quarantined(conn)
    for stream in catalogue.streams():
        name = f"{stream.system}/{stream.name}"
        if name not in truth["versions"] and name not in truth["snapshots"]:
            continue
        entity = stream.entity
        excused_raw = _rejected_now(conn, stream)
        excused = excused_raw | quarantined[entity.name]
        curated = _curated_versions(conn, entity)
        if name in truth["versions"]:
            source = dict(truth["versions"][name])
            raw = _raw_versions(conn, stream)
            missing = [rid for rid, ms in source.items()
                       if (rid, ms) not in raw and rid not in excused_raw]
            stale = [rid for rid, ms in source.items()
                     if curated.get(rid) != ms and rid not in excused]
        else:
            source = {rid: None for rid in truth["snapshots"][name]}
            raw_ids = {rid for rid, _ in _raw_versions(conn, stream)}
            missing = [rid for rid in source if rid not in raw_ids and rid not in excused_raw]
            stale = [rid for rid in source if rid not in curated and rid not in excused]
        checked += len(source)
        if missing:
            problems.append(f"raw: {len(missing)} latest versions of {name} missing from "
                            f"{stream.table}: ids {_ids(missing)}")
        if stale:
            problems.append(f"curated: {len(stale)} records of {name} not in curated."
                            f"{entity.table} at their latest version (not quarantined): "
                            f"ids {_ids(stale)}")
    return checked, problems


def check_duplicate_keys(conn) -> list[str]:
    problems = []
    for entity in catalogue.entities().values():
        doubled = conn.execute(sql.SQL(
            "SELECT {key}::text FROM {table} GROUP BY 1 HAVING count(*) > 1").format(
            key=sql.Identifier(entity.key),
            table=sql.Identifier("curated", entity.table))).fetchall()
        if doubled:
            problems.append(f"duplicate keys in curated.{entity.table}: "
                            f"{_ids(r[0] for r in doubled)}")
    return problems


def check_setups(conn, per_key: dict) -> list[str]:
    """One PSA project per deal, one ERP job per project (and code), one billing line per
    milestone: nothing doubled at the source, and every confirmed write there once."""
    problems = [f"{what}: {key} has {n} at the source"
                for what, counts in per_key.items() for key, n in counts.items() if n > 1]
    expected = {"psa_project": ("psa_projects_per_deal", "deal_id"),
                "erp_job": ("erp_jobs_per_code", "project_code"),
                "erp_billing_line": ("billing_lines_per_milestone", "record_key")}
    rows = conn.execute(
        "SELECT kind, idempotency_key, deal_id, project_code, record_key FROM ops.outbox "
        "WHERE status = 'confirmed' AND kind IN ('psa_project', 'erp_job', "
        "'erp_billing_line')").fetchall()
    for kind, key, deal_id, code, record_key in rows:
        counts_name, field = expected[kind]
        value = {"deal_id": deal_id, "project_code": code, "record_key": record_key}[field]
        n = per_key[counts_name].get(str(value), 0)
        if n != 1:
            problems.append(f"outbox {key} confirmed but the source has {n} ({counts_name} "
                            f"{value})")
    return problems


def _create_target(write: dict) -> str | None:
    """What a create is about (its idempotency target), None for other writes."""
    if write["method"] != "POST" or write["system"] == "webhook" or write["status"] >= 300:
        return None
    body = write["body"] if isinstance(write["body"], dict) else {}
    if write["path"].endswith("/v2/projects"):
        return f"psa project for deal {body.get('crm_deal_id')} / code {body.get('code')}"
    if write["path"].endswith(("/job", "/billingMilestone")):
        return f"erp {write['path'].rsplit('/', 1)[1]} externalId {body.get('externalId')}"
    return None


def check_writes(writes: list[dict]) -> list[str]:
    """No create applied twice (the sandbox's write log)."""
    targets = Counter(t for t in map(_create_target, writes) if t)
    return [f"write applied {n} times: {target}" for target, n in targets.items() if n > 1]


# Entities whose record key is derived from the raw record: SQL of every key the raw
# table yields (as include/sql/curated/<table>.sql builds it). Others: key = record_id.
DERIVED_KEYS = {
    # one time-off day per entry of a request's `dates` object: "<request id>:<day>"
    "time_off_day": "SELECT DISTINCT r.record_id || ':' || d.key FROM {raw} r "
                    "CROSS JOIN LATERAL jsonb_each_text(CASE WHEN jsonb_typeof("
                    "r.payload -> 'dates') = 'object' THEN r.payload -> 'dates' "
                    "ELSE '{{}}'::jsonb END) AS d",
}


def _raw_keys(conn, entity) -> set[str]:
    query = DERIVED_KEYS.get(entity.name, "SELECT DISTINCT record_id FROM {raw}")
    return {key for (key,) in conn.execute(sql.SQL(query).format(
        raw=sql.Identifier("raw", entity.raw_table)))}


def _reject_keys(conn, entity) -> tuple[set[str], set[str]]:
    """(record keys, reject ids) of the entity's stream's rejects: a reject's key is its
    primary key or `unkeyed:<md5 prefix>` (as psops.connectors.rejects names it)."""
    if not _rejects_present(conn):
        return set(), set()
    rows = conn.execute(
        "SELECT coalesce(record_key, 'unkeyed:' || left(md5(raw_text), 16)), id::text "
        "FROM ops.ingest_rejects WHERE system = %s AND stream = %s",
        (entity.source_system, entity.stream)).fetchall()
    return {key for key, _ in rows}, {reject_id for _, reject_id in rows}


def check_exceptions_traceable(conn) -> list[str]:
    """Every open exception names, under its own entity, a record of that entity's raw
    table (its record id, or the key derived from it) or a reject of its stream (the
    reject's key, or the reject row its details name). Write-back exceptions
    (deal.setup_invalid) are of entity deal: they trace to raw CRM deals."""
    by_entity = {e.name: e for e in catalogue.entities().values()}
    untraceable: dict[str, list[str]] = defaultdict(list)
    known: dict[str, tuple[set[str], set[str]]] = {}
    rows = conn.execute("SELECT entity, record_key, details ->> 'reject_id' "
                        "FROM ops.exceptions WHERE status = 'open'").fetchall()
    for entity_name, key, reject_id in rows:
        entity = by_entity.get(entity_name)
        if entity is None:
            untraceable[entity_name].append(key)
            continue
        if entity_name not in known:
            reject_keys, reject_ids = _reject_keys(conn, entity)
            known[entity_name] = (_raw_keys(conn, entity) | reject_keys, reject_ids)
        keys, reject_ids = known[entity_name]
        if key not in keys and reject_id not in reject_ids:
            untraceable[entity_name].append(key)
    return [f"{len(keys)} open exceptions of entity {name} name no raw or rejected record: "
            f"{_ids(keys)}" for name, keys in untraceable.items()]


def check_runs_finished(conn) -> list[str]:
    """After a cycle no ingest or transform run row is left `running` (killed tries are
    marked by the next run)."""
    problems = []
    for table in ("ingest_runs", "transform_runs"):
        n = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE status = 'running'").format(
            sql.Identifier("ops", table))).fetchone()[0]
        if n:
            problems.append(f"ops.{table}: {n} rows left 'running' after every task ended")
    sent = conn.execute("SELECT idempotency_key FROM ops.outbox WHERE status = 'sent'"
                        ).fetchall()
    if sent:
        problems.append(f"ops.outbox: {len(sent)} writes left 'sent' (never confirmed): "
                        f"{_ids(r[0] for r in sent)}")
    return problems


def check_keyed_publish(conn) -> list[str]:
    """Curated as published by keys is what a comparison of every row gives: after a
    keyed publish of what is pending, a full sync would change nothing (both rolled back)."""
    from psops.transform.curated import publish_curated

    with conn.transaction(force_rollback=True):
        publish_curated(conn)
        counts = publish_curated(conn, full=True)
    return [f"curated of entity {name}: a full comparison would delete {c['deleted']} and "
            f"insert {c['inserted']} rows the keyed publish left"
            for name, c in counts.items() if c["deleted"] or c["inserted"]]


def check_invariants(truth: dict, writes: list[dict]) -> tuple[int, list[str]]:
    """(records checked, problems) for the warehouse on the `warehouse` connection."""
    with warehouse_connection(autocommit=True, migrate=False) as conn:
        checked, problems = check_raw_and_curated(conn, truth)
        problems += check_duplicate_keys(conn)
        problems += check_setups(conn, truth["per_key"])
        problems += check_writes(writes)
        problems += check_exceptions_traceable(conn)
        problems += check_runs_finished(conn)
        problems += check_keyed_publish(conn)
    return checked, problems
