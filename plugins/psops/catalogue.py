"""The catalogue of source systems, their streams and the business entities the streams
feed, derived from the connector specs (include/connectors/<system>.yaml): the one place
that says which systems exist, their Airflow connection ids, auth styles, raw Asset URIs,
ingest DAGs, streams, raw tables, and each entity's staging table, key and load mode.

Import-light (YAML only): DAG files read it at parse time.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from psops.connectors.spec import ConnectorSpec, Entity, SpecError, Stream, load_spec
from psops.settings import CONNECTORS_DIR


@cache
def system_names() -> tuple[str, ...]:
    """Every system with a connector spec, in name order."""
    return tuple(sorted(path.stem for path in CONNECTORS_DIR.glob("*.yaml")))


def systems() -> tuple[ConnectorSpec, ...]:
    return tuple(load_spec(name) for name in system_names())


def system(name: str) -> ConnectorSpec:
    if name not in system_names():
        raise SpecError(f"no connector spec for system {name!r} in include/connectors/")
    return load_spec(name)


def raw_asset_uris() -> list[str]:
    """The Asset each ingest DAG updates once all its streams loaded."""
    return [spec.asset for spec in systems()]


def conn_id(system_name: str) -> str:
    """The Airflow connection of the system's API."""
    return system(system_name).conn_id


def auth(system_name: str) -> str:
    """How SourceApiHook authenticates to the system (spec.AUTH_STYLES)."""
    return system(system_name).auth


def token_path(system_name: str) -> str | None:
    """The OAuth token endpoint of a system with client-credentials auth."""
    return system(system_name).token_path


def request_pools() -> dict[str, int]:
    """Airflow pool -> slots, for every system whose API allows only a few requests in
    flight (`max_requests_in_flight`): the pool is named after the system's connection."""
    return {spec.conn_id: spec.max_requests_in_flight for spec in systems()
            if spec.max_requests_in_flight}


def request_pool(system_name: str) -> str | None:
    """The pool every task calling this system's API takes a slot of (None: no limit)."""
    spec = system(system_name)
    return spec.conn_id if spec.max_requests_in_flight else None


def ingest_dag_id(system_name: str) -> str:
    return f"psops_ingest_{system_name}"


def ingest_tasks() -> dict[str, tuple[str, ...]]:
    """Ingest DAG id -> the ids of its stream tasks, for every system."""
    return {ingest_dag_id(spec.system): tuple(stream.task_id for stream in spec.streams)
            for spec in systems()}


def streams() -> tuple[Stream, ...]:
    """Every stream of every system, system by system in spec order."""
    return tuple(stream for spec in systems() for stream in spec.streams)


def stream_of_raw_table(raw_table: str) -> Stream:
    """The stream that loads raw.<raw_table>."""
    for stream in streams():
        if stream.raw_table == raw_table:
            return stream
    raise SpecError(f"no stream loads raw.{raw_table}")


@cache
def entities() -> dict[str, Entity]:
    """Entity name -> Entity, one per stream of every system."""
    return entities_of(streams())


def entities_of(some_streams: Iterable[Stream]) -> dict[str, Entity]:
    """Entity name -> Entity of these streams; names and staging tables must be unique."""
    found: dict[str, Entity] = {}
    tables: dict[str, str] = {}
    for stream in some_streams:
        entity = stream.entity
        where = f"{stream.system}.yaml stream {stream.name!r} entity"
        if entity.name in found:
            raise SpecError(f"{where}: name {entity.name!r} is already the entity of "
                            f"{found[entity.name].source_system} {found[entity.name].stream}")
        if entity.table in tables:
            raise SpecError(f"{where}: table {entity.table!r} is already entity "
                            f"{tables[entity.table]!r}'s")
        found[entity.name] = entity
        tables[entity.table] = entity.name
    return found


def entity(name: str) -> Entity:
    try:
        return entities()[name]
    except KeyError:
        raise SpecError(f"no stream in include/connectors/ feeds entity {name!r}") from None


if __name__ == "__main__":  # `python -m psops.catalogue pools`: bin/airflow creates them
    import sys

    if sys.argv[1:] != ["pools"]:
        sys.exit("usage: python -m psops.catalogue pools")
    for pool, slots in request_pools().items():
        print(pool, slots)
