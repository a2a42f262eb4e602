"""Connector specs: one YAML file per source system under include/connectors/.

A spec declares the Airflow connection, the auth style and, per stream, the
request, the paginator, where the records sit, the primary key, the cursor
field and how the watermark is sent (placeholders in the request), the
overlap, and windowing. The engine runs any spec; adding a stream is YAML.

Placeholders in request paths, params and bodies:
  {since_iso}       watermark minus overlap, ISO 8601 UTC (epoch on the first run)
  {since_epoch_ms}  the same in epoch milliseconds
  {window_start}    as-of date minus `window.days_before` (windowed streams)
  {window_end}      as-of date plus `window.days_after`
  {company}         a key of the connection's `extra` (HRIS subdomain)

Loading a spec is cheap (DAG files do it at parse time); errors name the file
and the field.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from psops.settings import CONNECTORS_DIR

AUTH_STYLES = {"bearer", "bearer_account", "oauth2_client_credentials", "basic_api_key"}
PAGINATOR_TYPES = {"body_cursor", "next_link", "offset_has_more", "single_response"}
ENTITY_FIELDS = {"name", "table", "key", "critical"}
# Entity names, tables and keys become SQL identifiers and rule ids: plain lower-case names.
SQL_NAME = re.compile(r"[a-z_][a-z0-9_]*")


class SpecError(ValueError):
    """A connector spec that cannot be run, with the file and field named."""


def raw_table_name(system: str, stream: str) -> str:
    """The name, in schema `raw`, of the table a stream loads."""
    return f"{system}_{stream}"


@dataclass(frozen=True)
class Paginator:
    type: str
    page_size: int | None = None  # body_cursor: `limit` in the body
    page_size_param: str | None = None  # query parameter of the page size (count requests)
    cursor: str | None = None  # body_cursor: path of the next cursor in the response
    next: str | None = None  # next_link: path of the next URL
    offset_param: str = "offset"  # offset_has_more
    has_more: str = "hasMore"  # offset_has_more
    page_overlap: int = 0  # offset_has_more: records re-read from the previous page
    total: str | None = None  # path of the total count of matching records
    result_cap: int | None = None  # body_cursor: results one query may page through


@dataclass(frozen=True)
class Window:
    days_before: int
    days_after: int


@dataclass(frozen=True)
class Entity:
    """The business entity a stream feeds: staging.<table> and curated.<table>."""

    name: str  # rule-id prefix, e.g. time_entry
    table: str  # staging./curated. table name, e.g. time_entries
    key: str  # primary-key column = the source id
    source_system: str
    raw_table: str  # raw.<raw_table>, raw_table_name(system, stream)
    load: str  # incremental | snapshot
    stream: str  # ops.ingest_runs.stream
    critical: bool = False  # an empty table stops the marts
    version_field: str | None = None  # path of the update time in the raw payload


@dataclass(frozen=True)
class Stream:
    system: str
    name: str
    method: str
    path: str
    params: dict
    body: dict | None
    paginator: Paginator
    records: str  # path of the record list in a response; "." = the response itself
    primary_key: str | tuple[str, ...]  # a path, or paths whose values join as "a:b"
    cursor_field: str | None  # path of the record's update time (None: snapshot)
    overlap_minutes: int
    snapshot: bool
    window: Window | None
    entity: Entity

    @property
    def raw_table(self) -> str:
        """The raw table's name in schema `raw`."""
        return raw_table_name(self.system, self.name)

    @property
    def table(self) -> str:
        return f"raw.{self.raw_table}"

    @property
    def task_id(self) -> str:
        return f"load_{self.name}"


@dataclass(frozen=True)
class ConnectorSpec:
    system: str
    title: str
    conn_id: str
    auth: str
    asset: str
    streams: tuple[Stream, ...]
    token_path: str | None = None
    max_requests_in_flight: int | None = None  # > 0: an Airflow pool guards the API
    source: Path = field(default=Path("?"), compare=False)

    def stream(self, name: str) -> Stream:
        for stream in self.streams:
            if stream.name == name:
                return stream
        raise SpecError(f"{self.source.name}: no stream named {name!r}")


def _merge(defaults: dict, override: dict) -> dict:
    merged = copy.deepcopy(defaults)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _required(mapping: dict, key: str, where: str):
    if key not in mapping or mapping[key] in (None, ""):
        raise SpecError(f"{where}: `{key}` is required")
    return mapping[key]


def _sql_name(mapping: dict, key: str, where: str) -> str:
    value = _required(mapping, key, where)
    if not isinstance(value, str) or not SQL_NAME.fullmatch(value):
        raise SpecError(f"{where}: `{key}` must be a lower-case SQL name, not {value!r}")
    return value


def _parse_entity(system: str, stream: str, snapshot: bool, version_field: str | None, raw,
                  where: str) -> Entity:
    where = f"{where} entity"
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: `entity` is required: {{name, table, key}} of the staging table")
    unknown = set(raw) - ENTITY_FIELDS
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {sorted(unknown)}; allowed {sorted(ENTITY_FIELDS)}")
    names = {key: _sql_name(raw, key, where) for key in ("name", "table", "key")}
    critical = raw.get("critical", False)
    if not isinstance(critical, bool):
        raise SpecError(f"{where}: `critical` must be true or false, not {critical!r}")
    return Entity(
        **names, source_system=system, raw_table=raw_table_name(system, stream),
        load="snapshot" if snapshot else "incremental", stream=stream, critical=critical,
        version_field=version_field)


def _primary_key(raw: dict, where: str) -> str | tuple[str, ...]:
    """`primary_key`: a path, or a list of paths when the source numbers records of
    different kinds in separate sequences (HRIS whos_out: [type, id])."""
    key = _required(raw, "primary_key", where)
    if isinstance(key, list):
        if len(key) < 2 or not all(isinstance(part, str) and part for part in key):
            raise SpecError(f"{where}: `primary_key` must be a path or a list of 2+ paths")
        return tuple(key)
    return key


def _parse_stream(system: str, raw: dict, where: str) -> Stream:
    name = _sql_name(raw, "name", where)
    where = f"{where} stream {name!r}"
    request = _required(raw, "request", where)
    paginator_raw = _required(raw, "paginator", where)
    if paginator_raw.get("type") not in PAGINATOR_TYPES:
        raise SpecError(f"{where}: paginator.type must be one of {sorted(PAGINATOR_TYPES)}")
    try:
        paginator = Paginator(**paginator_raw)
    except TypeError as err:
        raise SpecError(f"{where}: paginator: {err}") from None
    snapshot = bool(raw.get("snapshot", False))
    cursor_field = raw.get("cursor_field")
    if not snapshot and not cursor_field:
        raise SpecError(f"{where}: an incremental stream needs `cursor_field` (or `snapshot: true`)")
    window = Window(**raw["window"]) if raw.get("window") else None
    return Stream(
        system=system,
        name=name,
        method=str(request.get("method", "GET")).upper(),
        path=_required(request, "path", where),
        params=dict(request.get("params") or {}),
        body=request.get("body"),
        paginator=paginator,
        records=_required(raw, "records", where),
        primary_key=_primary_key(raw, where),
        cursor_field=None if snapshot else cursor_field,
        overlap_minutes=int(raw.get("overlap_minutes", 0)),
        snapshot=snapshot,
        window=window,
        entity=_parse_entity(system, name, snapshot, None if snapshot else cursor_field,
                             raw.get("entity"), where),
    )


def parse_spec(path: Path) -> ConnectorSpec:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(f"{path.name}: not valid YAML: {err}") from None
    where = path.name
    auth = _required(raw, "auth", where)
    if auth not in AUTH_STYLES:
        raise SpecError(f"{where}: auth must be one of {sorted(AUTH_STYLES)}, not {auth!r}")
    system = _sql_name(raw, "system", where)
    if system != path.stem:
        raise SpecError(f"{where}: `system` must be the file's name ({path.stem!r}), not {system!r}")
    defaults = raw.get("stream_defaults") or {}
    streams = tuple(
        _parse_stream(system, _merge(defaults, stream_raw), where)
        for stream_raw in _required(raw, "streams", where)
    )
    names = [stream.name for stream in streams]
    if len(set(names)) != len(names):
        raise SpecError(f"{where}: stream names must be unique: {names}")
    return ConnectorSpec(
        system=system,
        title=raw.get("title", system.upper()),
        conn_id=_required(raw, "conn_id", where),
        auth=auth,
        asset=_required(raw, "asset", where),
        streams=streams,
        token_path=raw.get("token_path"),
        max_requests_in_flight=raw.get("max_requests_in_flight"),
        source=path,
    )


@cache
def load_spec(system: str) -> ConnectorSpec:
    path = CONNECTORS_DIR / f"{system}.yaml"
    if not path.exists():
        raise SpecError(f"no connector spec {path}")
    return parse_spec(path)
