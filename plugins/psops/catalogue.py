"""The catalogue of source systems and their streams, derived from the connector specs
(include/connectors/<system>.yaml): the one place that says which systems exist, their
Airflow connection ids, auth styles, raw Asset URIs, streams and raw tables.

Import-light (YAML only): DAG files read it at parse time.
"""

from __future__ import annotations

from functools import cache

from psops.connectors.spec import ConnectorSpec, SpecError, load_spec
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
