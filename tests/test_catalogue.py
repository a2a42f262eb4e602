"""The catalogue (psops.catalogue): systems, streams and entities from the connector specs,
and the spec checks that keep it consistent (no I/O beyond reading the YAML)."""

from __future__ import annotations

from pathlib import Path

import pytest

from psops import catalogue
from psops.connectors.spec import SpecError, parse_spec
from psops.settings import CONNECTORS_DIR, SQL_DIR
from psops.transform.rules import load_catalogue


def test_every_stream_feeds_one_entity_with_the_derived_facts():
    streams = catalogue.streams()
    entities = catalogue.entities()
    assert len(entities) == len(streams)
    for stream in streams:
        entity = entities[stream.entity.name]
        assert entity.source_system == stream.system
        assert entity.stream == stream.name
        assert entity.raw_table == f"{stream.system}_{stream.name}" == stream.raw_table
        assert entity.load == ("snapshot" if stream.snapshot else "incremental")


def test_raw_tables_staging_tables_conn_ids_and_assets_are_unique():
    specs = catalogue.systems()
    for facts in ([s.raw_table for s in catalogue.streams()],
                  [e.table for e in catalogue.entities().values()],
                  [spec.conn_id for spec in specs],
                  [spec.asset for spec in specs]):
        assert len(set(facts)) == len(facts), facts


def test_every_entity_has_its_staging_sql_file():
    missing = [e.table for e in catalogue.entities().values()
               if not (SQL_DIR / "curated" / f"{e.table}.sql").exists()]
    assert missing == []


def test_only_the_hris_employees_are_critical():
    assert [e.name for e in catalogue.entities().values() if e.critical] == ["employee"]


def test_the_rule_catalogue_checks_the_catalogue_entities():
    rules = load_catalogue()
    assert rules.entities == catalogue.entities()
    assert {rule.entity_name for rule in rules.rules} == set(catalogue.entities())


def test_system_lookups():
    assert catalogue.system_names() == ("crm", "erp", "hris", "psa")
    assert catalogue.conn_id("erp") == "erp_api"
    assert catalogue.auth("erp") == "oauth2_client_credentials"
    assert catalogue.token_path("erp") == "/oauth2/token"
    assert catalogue.token_path("crm") is None
    assert catalogue.ingest_tasks()["psops_ingest_hris"] == (
        "load_employees", "load_time_off_requests", "load_whos_out")
    assert catalogue.stream_of_raw_table("erp_billing_milestones").entity.name == \
        "billing_schedule_line"
    with pytest.raises(SpecError, match="no connector spec for system 'nope'"):
        catalogue.system("nope")
    with pytest.raises(SpecError, match="feeds entity 'nope'"):
        catalogue.entity("nope")


def test_write_back_hooks_come_from_the_catalogue():
    from psops.writeback.source_writes import SourceWrites

    hook = SourceWrites().hook("erp")
    assert (hook.http_conn_id, hook.auth_style, hook.token_path) == (
        "erp_api", "oauth2_client_credentials", "/oauth2/token")


def _spec_with(tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / "psa.yaml"
    text = (CONNECTORS_DIR / "psa.yaml").read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("old, new, message", [
    ("    entity: {name: project, table: projects, key: project_id}\n", "",
     "psa.yaml stream 'projects' entity: `entity` is required"),
    ("{name: project, table: projects, key: project_id}", "{name: project, table: projects}",
     "psa.yaml stream 'projects' entity: `key` is required"),
    ("{name: project, table: projects, key: project_id}",
     "{name: project, table: projects, key: project_id, load: snapshot}",
     r"psa.yaml stream 'projects' entity: unknown field\(s\) \['load'\]"),
    ("table: projects,", "table: Projects-2,",
     "psa.yaml stream 'projects' entity: `table` must be a lower-case SQL name"),
    ("key: project_id}", "key: project_id, critical: yes-please}",
     "psa.yaml stream 'projects' entity: `critical` must be true or false"),
    ("system: psa", "system: pse", "psa.yaml: `system` must be the file's name"),
])
def test_spec_errors_name_the_file_and_the_field(tmp_path, old, new, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(_spec_with(tmp_path, old, new))


def test_two_streams_feeding_one_table_are_refused(tmp_path):
    erp = tmp_path / "erp.yaml"
    erp.write_text((CONNECTORS_DIR / "erp.yaml").read_text().replace(
        "{name: job, table: jobs,", "{name: job, table: deals,"))
    streams = [*catalogue.system("crm").streams, *parse_spec(erp).streams]
    with pytest.raises(SpecError, match="erp.yaml stream 'jobs' entity: table 'deals' is already"):
        catalogue.entities_of(streams)
