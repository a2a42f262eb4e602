"""Raw tables and the COPY encoding of source records.

Every stream has one append-only table `raw.<system>_<stream>`: the record as
the system sent it (jsonb) plus load metadata. Duplicate copies (re-runs,
overlap windows, records repeated across pages) are resolved downstream by the
latest `source_updated_at`, then the highest `load_seq`.

A record that cannot be loaded as it is (not a JSON object, no primary key, a NUL
character jsonb cannot hold, invalid JSON: a NaN/Infinity/out-of-range number the page
parser marked as an InvalidNumber, or a lone surrogate escape) is not copied: the encoder keeps it as a Reject, which
the engine stores in ops.ingest_rejects (psops.connectors.rejects).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from psycopg import sql

from psops.connectors.request_template import parse_time
from psops.connectors.spec import Stream
from psops.db import scalar
from psops.settings import RAW_TABLE_LOCK_CLASS

COPY_COLUMNS = sql.SQL("(record_id, source_updated_at, payload, run_id)")


def raw_table_ddl(raw_table: str) -> sql.Composed:
    """Create raw.<raw_table> and its indexes (idempotent)."""
    return sql.SQL("""
        CREATE TABLE IF NOT EXISTS {table} (
            record_id         text NOT NULL,
            source_updated_at timestamptz,
            payload           jsonb NOT NULL,
            run_id            bigint NOT NULL,
            loaded_at         timestamptz NOT NULL DEFAULT now(),
            load_seq          bigint GENERATED ALWAYS AS IDENTITY
        );
        CREATE INDEX IF NOT EXISTS {run_index} ON {table} USING brin (run_id);
        CREATE INDEX IF NOT EXISTS {seq_index} ON {table} USING brin (load_seq);
        CREATE INDEX IF NOT EXISTS {undated_index} ON {table} (record_id)
            WHERE source_updated_at IS NULL;
    """).format(table=sql.Identifier("raw", raw_table),
                run_index=sql.Identifier(f"{raw_table}_run_brin"),
                seq_index=sql.Identifier(f"{raw_table}_seq_brin"),
                undated_index=sql.Identifier(f"{raw_table}_undated"))


def ensure_raw_table(conn, raw_table: str) -> None:
    """raw.<raw_table> and its indexes, created unless the table exists. Two sessions
    running CREATE TABLE IF NOT EXISTS at once (an ingest and a transform on a new
    warehouse) collide on PostgreSQL's catalogue; an advisory lock held to the end of
    the creating transaction makes the second wait and find the table."""
    if scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (f"raw.{raw_table}",)):
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                     (RAW_TABLE_LOCK_CLASS, raw_table))
        conn.execute(raw_table_ddl(raw_table))


def drop_repeated_copies_sql(raw_table: str, across_runs: bool) -> sql.Composed:
    """Delete this run's rows that repeat a version already in raw: the same record and
    update time loaded earlier in this run (overlapping pages, duplicate copies) or, with
    `across_runs`, by an earlier run (the overlap window, and records dated after the
    watermark's cap, which every run reads again). Parameter: run_id."""
    if across_runs:
        earlier = "(old.run_id <> new.run_id OR old.load_seq < new.load_seq)"
    else:
        earlier = "(old.run_id = new.run_id AND old.load_seq < new.load_seq)"
    return sql.SQL("""
        DELETE FROM {table} AS new
        USING {table} AS old
        WHERE new.run_id = %(run_id)s
          AND old.record_id = new.record_id
          AND old.source_updated_at IS NOT DISTINCT FROM new.source_updated_at
          AND old.payload = new.payload
          AND {earlier}
    """).format(table=sql.Identifier("raw", raw_table), earlier=sql.SQL(earlier))


def _copy_text(value) -> bytes:
    """A value in COPY text format: NULL as \\N; backslash, tab, newlines escaped."""
    if value is None:
        return b"\\N"
    text = value if isinstance(value, str) else str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = (text.replace("\\", "\\\\").replace("\t", "\\t")
                .replace("\n", "\\n").replace("\r", "\\r"))
    return text.encode()


# A NUL escape in JSON text: `\u0000` after an even number of backslashes (an odd number
# would make it the text "\u0000", which jsonb stores fine).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


# An ISO 8601 time that PostgreSQL reads as Python does once fromisoformat accepted it:
# a UTC offset PostgreSQL accepts (under 16 hours), no week dates or basic format.
_POSTGRES_READY_TIME = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-](?:0\d|1[0-5]):[0-5]\d)")


def copy_time(value) -> str | None:
    """The source's update time as COPY reads it into a timestamptz: an aware ISO time
    as it came (once Python accepts it), anything else parse_time reads (epoch
    milliseconds, a naive time taken as UTC) in UTC; None when unparseable."""
    moment = parse_time(value)
    if moment is None:
        return None
    if isinstance(value, str) and _POSTGRES_READY_TIME.fullmatch(value):
        return value
    return moment.isoformat()  # in UTC (parse_time): PostgreSQL refuses offsets of 16 h+


class InvalidNumber:
    """Stands in for a number that JSON (and jsonb) cannot hold, as the lenient page
    parser met it: NaN, Infinity, or a literal beyond a double (1e400)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return self.text


class _Unloadable(ValueError):
    """Why orjson could not encode a record (the `default` hook's verdict)."""


def _refuse(value):
    """orjson's `default`: called only for what it cannot encode (so never on clean pages)."""
    if isinstance(value, InvalidNumber):
        raise _Unloadable(f"invalid JSON: the number {value.text} is not finite "
                          f"(jsonb cannot hold it)")
    raise _Unloadable(f"not JSON: a {type(value).__name__}")


def _encode_failure(err: orjson.JSONEncodeError) -> str:
    if isinstance(err.__cause__, _Unloadable):
        return str(err.__cause__)
    if "surrogates" in str(err):
        return ("invalid JSON: a lone surrogate escape (\\ud800-\\udfff without its pair) "
                "is not text PostgreSQL can store")
    return f"not loadable as JSON: {err}"


def _escaped_text(value) -> str:
    """Text PostgreSQL can store: NUL characters and lone surrogates as JSON escapes."""
    return (str(value).encode("utf-8", "backslashreplace").decode()
            .replace("\x00", "\\u0000"))


@dataclass(frozen=True)
class Reject:
    """A record the stream could not load as it is."""

    record_key: str | None  # its primary key, when it has one
    reason: str
    raw_text: str  # the record as JSON text (a NUL stays escaped as \u0000)


class RecordEncoder:
    """Turns a page of records into COPY text lines for the raw table; the records that
    cannot be loaded are kept in `rejects` (one per record key, or per text if keyless)."""

    def __init__(self, stream: Stream, run_id: int,
                 key_getter: Callable, updated_getter: Callable | None):
        self.stream = stream
        self.run_id = str(run_id).encode()
        self.key_of = key_getter
        self.updated_of = updated_getter
        self.unparseable_times = 0
        self.rejects: dict[str, Reject] = {}

    def encode(self, records: list) -> bytes:
        """The page's COPY text. A NUL escape is rare: the page is encoded once without
        looking for one, and again record by record only when its text holds one."""
        unparseable_before, rejects_before = self.unparseable_times, dict(self.rejects)
        page = self._encode(records, look_for_nul=False)
        if b"u0000" in page:  # the second pass counts and rejects afresh
            self.unparseable_times, self.rejects = unparseable_before, rejects_before
            page = self._encode(records, look_for_nul=True)
        return page

    def _encode(self, records: list, look_for_nul: bool) -> bytes:
        lines = []
        for record in records:
            line = self._line(record, look_for_nul)
            if line is not None:
                lines.append(line)
        return b"".join(lines)

    def _line(self, record, look_for_nul: bool) -> bytes | None:
        try:
            payload = orjson.dumps(record, default=_refuse)
        except orjson.JSONEncodeError as err:
            key = self.key_of(record) if isinstance(record, dict) else None
            return self._reject(None if key in (None, "") else _escaped_text(key),
                                _encode_failure(err), _lenient_text(record))
        if not isinstance(record, dict):
            return self._reject(None, f"not a JSON object: a JSON {type(record).__name__}",
                                payload)
        key = self.key_of(record)
        if key is None or key == "":
            return self._reject(None, f"missing primary key: no `{self._key_name()}`", payload)
        key = str(key)
        if look_for_nul and b"\\u0000" in payload and _NUL_ESCAPE.search(payload):
            return self._reject(_escaped_text(key),
                                "NUL character: PostgreSQL cannot store U+0000 in jsonb",
                                payload)
        updated = None
        if self.updated_of is not None:
            updated = self.updated_of(record)
            if updated is not None:
                updated = copy_time(updated)
                if updated is None:
                    self.unparseable_times += 1  # kept in the payload; quality flags it
        if b"\\" in payload:
            payload = payload.replace(b"\\", b"\\\\")
        return b"%s\t%s\t%s\t%s\n" % (_copy_text(key), _copy_text(updated), payload, self.run_id)

    def _key_name(self) -> str:
        key = self.stream.primary_key
        return key if isinstance(key, str) else ", ".join(key)

    def _reject(self, key: str | None, reason: str, payload: bytes | str) -> None:
        text = payload.decode() if isinstance(payload, bytes) else payload
        self.rejects[key if key is not None else text] = Reject(key, reason, text)
        return None


def _lenient_text(record) -> str:
    """A record orjson cannot encode, as ASCII JSON text (lone surrogates and NULs escaped;
    an InvalidNumber as a string of its literal)."""
    return json.dumps(record, ensure_ascii=True, default=str)
