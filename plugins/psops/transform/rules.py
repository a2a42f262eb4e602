"""The rule catalogue (include/quality_rules.yaml): one definition per rule that drives
both the set-based SQL (every failing record, for ops.exceptions and quarantine) and
the Great Expectations suite (expectations/<entity>.json). The entities the rules
check come from psops.catalogue (the connector specs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml
from psycopg import sql

from psops import catalogue as sources
from psops.catalogue import Entity
from psops.settings import QUALITY_RULES_PATH, SUITES_DIR

UNEXPECTED_ROWS = "unexpected_rows"
SEVERITIES = ("error", "warning")


@dataclass(frozen=True)
class Rule:
    rule_id: str
    severity: str
    description: str
    where: str  # predicate over staging.<table> t, true for a failing record
    details: tuple[str, ...]
    expectation_type: str
    expectation_kwargs: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def entity_name(self) -> str:
        return self.rule_id.split(".", 1)[0]

    @property
    def uses_as_of(self) -> bool:
        return "%(as_of)s" in self.where


@dataclass(frozen=True)
class Catalogue:
    entities: dict[str, Entity]
    rules: tuple[Rule, ...]

    def entity(self, name: str) -> Entity:
        return self.entities[name]

    def rules_of(self, entity: str) -> list[Rule]:
        return [r for r in self.rules if r.entity_name == entity]

    def rule(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.rule_id == rule_id)


class CatalogueError(ValueError):
    pass


def _plain_sql(template: str, **identifiers: sql.Composable) -> str:
    """SQL text with quoted identifiers: rule predicates are plain text (GX runs them too)."""
    return sql.SQL(template).format(**identifiers).as_string(None)


def _structural_rules(entity: Entity) -> list[Rule]:
    """Keys unique and not null, for every entity (staging's primary key guarantees
    them; the rules make the guarantee visible in GX and ops.exceptions)."""
    key = sql.Identifier(entity.key)
    return [
        Rule(
            rule_id=f"{entity.name}.key_not_null",
            severity="error",
            description=f"{entity.key} is missing",
            where=_plain_sql("t.{key} IS NULL", key=key),
            details=(),
            expectation_type="expect_column_values_to_not_be_null",
            expectation_kwargs={"column": entity.key},
        ),
        Rule(
            rule_id=f"{entity.name}.key_unique",
            severity="error",
            description=f"{entity.key} appears more than once",
            where=_plain_sql(
                "EXISTS (SELECT 1 FROM {table} d WHERE d.{key} = t.{key} AND d.ctid <> t.ctid)",
                table=sql.Identifier("staging", entity.table), key=key),
            details=(),
            expectation_type="expect_column_values_to_be_unique",
            expectation_kwargs={"column": entity.key},
        ),
    ]


def _version_time_rules(entity: Entity) -> list[Rule]:
    """For an entity loaded incrementally, whose versions are ordered by the record's
    update time (raw.source_updated_at, parsed by the ingest engine):
    - `version_time_future` (warning): the version is dated after the transform's run
      (it resolves once that time has passed); the ingest watermark never follows it;
    - `version_time_unparseable` (error): a copy of the record loaded at or after the
      staged one has an update time that could not be parsed, so no version order
      holds; quarantined until a copy with a readable time is loaded after it."""
    if entity.version_field is None:
        return []
    key = sql.Identifier(entity.key)
    raw_field = sql.SQL("r.payload")
    *parents, leaf = entity.version_field.split(".")
    for parent in parents:
        raw_field = sql.SQL("{} -> {}").format(raw_field, sql.Literal(parent))
    raw_field = sql.SQL("{} ->> {}").format(raw_field, sql.Literal(leaf))
    return [
        Rule(
            rule_id=f"{entity.name}.version_time_future",
            severity="warning",
            description=f"updated in the future: `{entity.version_field}` is after the "
                        "transform's run",
            where="t.source_updated_at > now()",
            details=("source_updated_at",),
            expectation_type=UNEXPECTED_ROWS,
        ),
        Rule(
            rule_id=f"{entity.name}.version_time_unparseable",
            severity="error",
            description=f"`{entity.version_field}` of its latest copy cannot be read as a "
                        "time: which version is current is unknown",
            where=_plain_sql(
                "EXISTS (SELECT 1 FROM {raw} r WHERE r.record_id = t.{key}::text "
                "AND r.source_updated_at IS NULL AND r.load_seq >= t.load_seq "
                "AND coalesce({raw_field}, '') <> '')",
                raw=sql.Identifier("raw", entity.raw_table), key=key, raw_field=raw_field),
            details=("source_updated_at",),
            expectation_type=UNEXPECTED_ROWS,
        ),
    ]


def _parse_rule(spec: dict) -> Rule:
    expectation = spec["expectation"]
    return Rule(
        rule_id=spec["rule_id"],
        severity=spec["severity"],
        description=spec["description"],
        where=" ".join(spec["where"].split()),
        details=tuple(spec.get("details", ())),
        expectation_type=expectation["type"],
        expectation_kwargs=dict(expectation.get("kwargs", {})),
    )


def _check_rule(rule: Rule, entities: dict[str, Entity], seen: set[str]) -> None:
    if rule.entity_name not in entities:
        raise CatalogueError(f"{rule.rule_id}: unknown entity {rule.entity_name!r} "
                             "(entities are the `entity:` blocks of include/connectors/*.yaml)")
    if rule.severity not in SEVERITIES:
        raise CatalogueError(f"{rule.rule_id}: severity must be error or warning")
    if rule.rule_id in seen:
        raise CatalogueError(f"{rule.rule_id} is defined twice")
    if "{" in rule.where or "}" in rule.where:
        raise CatalogueError(f"{rule.rule_id}: braces are not allowed in `where` (GX templates)")


@lru_cache(maxsize=4)
def load_catalogue(path: Path = QUALITY_RULES_PATH) -> Catalogue:
    """The entities of the connector specs and the rules of `path`, generated ones
    (structural, version times) first."""
    entities = sources.entities()
    rules = [rule for entity in entities.values()
             for rule in _structural_rules(entity) + _version_time_rules(entity)]
    seen = {r.rule_id for r in rules}
    for spec in yaml.safe_load(Path(path).read_text())["rules"]:
        rule = _parse_rule(spec)
        _check_rule(rule, entities, seen)
        seen.add(rule.rule_id)
        rules.append(rule)
    return Catalogue(entities=entities, rules=tuple(rules))


# --------------------------------------------------------------------------
# SQL side
# --------------------------------------------------------------------------


def suite_name(entity_name: str) -> str:
    """The GX suite of an entity (expectations/<entity>.json, ops.quality_results.suite)."""
    return f"psops.{entity_name}"


def failing_records_sql(rule: Rule, catalogue: Catalogue) -> sql.Composed:
    """SELECT record_key, details of EVERY record failing the rule (param: as_of); the
    details are the rule's `details` columns as a JSON object keyed by column name."""
    entity = catalogue.entity(rule.entity_name)
    columns = sql.SQL(", ").join(
        sql.SQL("t.{}").format(sql.Identifier(column)) for column in rule.details)
    return sql.SQL(
        "SELECT t.{key}::text AS record_key, "
        "(SELECT to_jsonb(rule_details.*) FROM (SELECT {columns}) rule_details) AS details "
        "FROM {table} t WHERE ({where})"
    ).format(key=sql.Identifier(entity.key), columns=columns,
             table=sql.Identifier("staging", entity.table), where=sql.SQL(rule.where))


# --------------------------------------------------------------------------
# GX side: suites as JSON (generated from the catalogue, kept in expectations/)
# --------------------------------------------------------------------------

AS_OF_TOKEN = "$as_of"  # replaced by DATE 'YYYY-MM-DD' when the suite is validated


def gx_unexpected_rows_query(rule: Rule) -> str:
    """The rule's predicate as a GX UnexpectedRowsExpectation query over the batch."""
    return "SELECT * FROM (SELECT * FROM {batch}) t WHERE (" + rule.where.replace("%(as_of)s", AS_OF_TOKEN) + ")"


def expectation_config(rule: Rule) -> dict:
    meta = {"rule_id": rule.rule_id, "severity": rule.severity, "description": rule.description}
    if rule.expectation_type == UNEXPECTED_ROWS:
        return {
            "type": "unexpected_rows_expectation",
            "kwargs": {"unexpected_rows_query": gx_unexpected_rows_query(rule)},
            "meta": meta,
        }
    return {"type": rule.expectation_type, "kwargs": dict(rule.expectation_kwargs), "meta": meta}


def suite_dict(entity: Entity, catalogue: Catalogue) -> dict:
    return {
        "name": suite_name(entity.name),
        "expectations": [expectation_config(r) for r in catalogue.rules_of(entity.name)],
        "meta": {
            "generated_from": "include/quality_rules.yaml",
            "table": f"staging.{entity.table}",
            "source_system": entity.source_system,
            "critical": entity.critical,
        },
    }


def render_suites(catalogue: Catalogue | None = None) -> dict[str, str]:
    """File name -> JSON text of every suite."""
    catalogue = catalogue or load_catalogue()
    return {
        f"{name}.json": json.dumps(suite_dict(entity, catalogue), indent=2, sort_keys=True) + "\n"
        for name, entity in catalogue.entities.items()
    }


def write_suites(directory: Path = SUITES_DIR) -> list[Path]:
    """Regenerate expectations/*.json from the catalogue (python -m psops.transform.rules)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_suites().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_suites():
        print(p)
