"""Quality gates, Great Expectations side: the suites in expectations/*.json (generated
from the rule catalogue) validated against the staging tables in PostgreSQL (SQL
pushdown), all suites in one checkpoint, results kept in ops.quality_results next to the
SQL count of failing records of the same rule, Data Docs built into a folder. A suite
validates the records changed since the last publish, or its whole table after a full
mark or once a week (validation_scopes; ops.quality_results.scope says which; the SQL
count is always over the whole table). A record failing only because another entity
changed (a termination date moving) shows in GX at the next whole-table validation; the
SQL side, which keeps the exception queue, checks every record on every run.

GX reports at most 20 failing keys per expectation: the authoritative list of failing
records (exceptions, quarantine) comes from the SQL side (quality.py).
Imported lazily: importing GX costs ~6 s. GX runs in a thread beside the SQL gates
(ValidationInBackground), whose transaction waits for it before it commits: GX sees the
changed records as staged, before the gates' quarantine changes.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import date, timedelta
from pathlib import Path

from psycopg import sql

from psops.settings import SUITES_DIR
from psops.transform.quality import GateReport
from psops.transform.rules import (
    AS_OF_TOKEN,
    Catalogue,
    load_catalogue,
    render_suites,
    suite_name,
)

log = logging.getLogger(__name__)


REGENERATE_SUITES = "PYTHONPATH=plugins .venv/bin/python -m psops.transform.rules"


def load_suite_dicts(as_of: date, directory: Path = SUITES_DIR,
                     catalogue: Catalogue | None = None) -> dict[str, dict]:
    """Entity -> suite dict, for every entity of the catalogue, with the as-of date put
    into as-of dependent queries: expectations/<entity>.json, or the suite rendered from
    the catalogue when the file is missing (an entity added without regenerating)."""
    catalogue = catalogue or load_catalogue()
    literal = f"DATE '{as_of.isoformat()}'"
    rendered: dict[str, str] = {}
    suites = {}
    for name in catalogue.entities:
        path = directory / f"{name}.json"
        if path.exists():
            text = path.read_text()
        else:
            log.warning("GX: no suite file %s for entity %s; validating the suite rendered "
                        "from the rule catalogue (regenerate the files: %s)",
                        path, name, REGENERATE_SUITES)
            rendered = rendered or render_suites(catalogue)
            text = rendered[path.name]
        suites[name] = json.loads(text.replace(AS_OF_TOKEN, literal))
    return suites


def _build_context(url: str, docs_dir: Path):
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    try:  # no tqdm bars in task logs
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - cosmetic only
        log.debug("could not switch GX progress bars off", exc_info=True)
    docs_dir.mkdir(parents=True, exist_ok=True)
    context.add_data_docs_site(
        site_name="psops",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    datasource = context.data_sources.add_postgres(name="warehouse", connection_string=url)
    return gx, context, datasource


#: a suite validated only on changed records for this long is validated whole again
WHOLE_TABLE_EVERY = timedelta(days=7)
WHOLE_TABLE, CHANGED = "table", "changed"


def validation_scopes(conn, catalogue: Catalogue) -> dict[str, str]:
    """Entity -> WHOLE_TABLE or CHANGED (the records noted in ops.curated_pending): the
    whole table for an entity marked for a full comparison (ops.curated_full_sync) or
    whose suite had no whole-table validation within WHOLE_TABLE_EVERY."""
    marked = {entity for (entity,) in conn.execute("SELECT entity FROM ops.curated_full_sync")}
    recent = {suite for (suite,) in conn.execute(
        "SELECT DISTINCT suite FROM ops.quality_results "
        "WHERE scope = 'table' AND validated_at > now() - %s", (WHOLE_TABLE_EVERY,))}
    return {name: WHOLE_TABLE if "*" in marked or name in marked
            or suite_name(name) not in recent else CHANGED
            for name in catalogue.entities}


def _changed_records_query(entity) -> str:
    return sql.SQL(
        "SELECT t.* FROM {table} t WHERE t.{key}::text IN (SELECT record_key FROM "
        "ops.curated_pending WHERE entity = {entity})"
    ).format(table=sql.Identifier("staging", entity.table), key=sql.Identifier(entity.key),
             entity=sql.Literal(entity.name)).as_string(None)


def run_gx(as_of: date, docs_dir: Path, scopes: dict[str, str] | None = None) -> list[dict]:
    """Validate every suite in the `warehouse` connection's database, on the whole table
    or the changed records as `scopes` says (whole tables when None); return one dict
    per expectation result."""
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    from psops.db import sqlalchemy_url

    catalogue = load_catalogue()
    gx, context, datasource = _build_context(sqlalchemy_url(), docs_dir)
    definitions = []
    for name, suite_json in load_suite_dicts(as_of, catalogue=catalogue).items():
        entity = catalogue.entity(name)
        if (scopes or {}).get(name, WHOLE_TABLE) == WHOLE_TABLE:
            asset = datasource.add_table_asset(name=entity.table, table_name=entity.table,
                                               schema_name="staging")
        else:
            asset = datasource.add_query_asset(name=f"{entity.table} (changed records)",
                                               query=_changed_records_query(entity))
        batch = asset.add_batch_definition_whole_table(f"{entity.table}_all")
        suite = context.suites.add(gx.ExpectationSuite(
            name=suite_json["name"],
            expectations=[ExpectationConfiguration(**e).to_domain_obj()
                          for e in suite_json["expectations"]],
            meta=suite_json.get("meta", {}),
        ))
        definitions.append(context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{name}_{as_of.isoformat()}", data=batch, suite=suite)
        ))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=f"psops_transform_{as_of.isoformat()}",
        validation_definitions=definitions,
        actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["psops"])],
        result_format={"result_format": "SUMMARY"},
    ))
    outcome = checkpoint.run()
    return [_result_row(validation.suite_name, expectation_result)
            for validation in outcome.run_results.values()
            for expectation_result in validation.results]


def _result_row(suite: str, expectation_result) -> dict:
    config = expectation_result.expectation_config
    meta = config.meta or {}
    result = expectation_result.result or {}
    exception_info = expectation_result.exception_info
    observed = result.get("observed_value") if config.type == "unexpected_rows_expectation" \
        else None
    return {
        "suite": suite,
        "rule_id": meta.get("rule_id"),
        "severity": meta.get("severity"),
        "expectation_type": config.type,
        "success": bool(expectation_result.success),
        "element_count": result.get("element_count"),
        "unexpected_count": result.get("unexpected_count", observed),
        "partial_unexpected": result.get("partial_unexpected_list")
                              or result.get("details", {}).get("unexpected_rows"),
        "exception": (exception_info or {}).get("exception_message")
                     if isinstance(exception_info, dict) else None,
    }


class ValidationInBackground:
    """run_gx in a thread of its own: GX is Python work, the SQL gates beside it wait on
    PostgreSQL, so on two cores the two overlap. Started with the scopes read in the
    caller's transaction; `rows()` waits for it and raises what it raised."""

    def __init__(self, conn, as_of: date, docs_dir: Path):
        self.scopes = validation_scopes(conn, load_catalogue())
        self._rows: list[dict] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(as_of, docs_dir),
                                        name="psops-gx-validation", daemon=True)
        self._thread.start()

    def _run(self, as_of: date, docs_dir: Path) -> None:
        try:
            self._rows = run_gx(as_of, docs_dir, self.scopes)
        except BaseException as err:  # noqa: BLE001 - raised in the caller by rows()
            self._error = err

    def wait(self) -> None:
        self._thread.join()

    def rows(self) -> list[dict]:
        self.wait()
        if self._error is not None:
            raise self._error
        return self._rows


def record_results(conn, as_of: date, run_id: int | None, rows: list[dict],
                   scopes: dict[str, str], report: GateReport | None = None) -> None:
    """Keep GX's results in ops.quality_results (with the SQL failing count of the rule)."""
    scope_of_suite = {suite_name(name): scope for name, scope in scopes.items()}
    sql_counts = {rule.rule_id: rule.failing for rule in report.rules} if report else {}
    with conn.transaction():
        for row in rows:
            conn.execute(
                """INSERT INTO ops.quality_results
                       (transform_run_id, as_of, suite, rule_id, severity, expectation_type,
                        success, element_count, unexpected_count, partial_unexpected,
                        sql_failing_count, scope)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (run_id, as_of, row["suite"], row["rule_id"], row["severity"],
                 row["expectation_type"], row["success"], row["element_count"],
                 _as_int(row["unexpected_count"]) if row["unexpected_count"] is not None
                 else (0 if row["success"] else None),
                 json.dumps(row["partial_unexpected"], default=str),
                 sql_counts.get(row["rule_id"]), scope_of_suite.get(row["suite"], WHOLE_TABLE)),
            )
    failed = [row for row in rows if not row["success"]]
    changed_only = sorted(name for name, scope in scopes.items() if scope == CHANGED)
    log.info("GX: %d expectations over %d suites, %d failed; %s",
             len(rows), len({row["suite"] for row in rows}), len(failed),
             f"changed records only for {', '.join(changed_only)}" if changed_only
             else "whole tables")


def _as_int(value):
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
