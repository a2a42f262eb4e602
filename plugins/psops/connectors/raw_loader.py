"""Raw tables and the COPY encoding of source records.

Every stream has one append-only table `raw.<system>_<stream>`: the record as
the system sent it (jsonb) plus load metadata. Duplicate copies (re-runs,
overlap windows, records repeated across pages) are resolved downstream by the
latest `source_updated_at`, then the highest `load_seq`.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from psycopg import sql

from psops.connectors.request_template import parse_time
from psops.connectors.spec import Stream

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
    """).format(table=sql.Identifier("raw", raw_table),
                run_index=sql.Identifier(f"{raw_table}_run_brin"),
                seq_index=sql.Identifier(f"{raw_table}_seq_brin"))


def drop_repeated_copies_sql(raw_table: str, across_runs: bool) -> sql.Composed:
    """Delete this run's rows that repeat a version already in raw: the same record and
    update time loaded earlier in this run (overlapping pages, duplicate copies) or, with
    `across_runs`, by an earlier run. Only rows at or before the previous watermark can
    repeat an earlier run (the overlap window), which keeps the join small.
    Parameters: run_id, watermark_before."""
    if across_runs:
        candidates = ("(new.source_updated_at <= %(watermark_before)s "
                      "OR new.source_updated_at IS NULL OR old.run_id = new.run_id)")
        earlier = "(old.run_id <> new.run_id OR old.load_seq < new.load_seq)"
    else:
        candidates = "TRUE"
        earlier = "(old.run_id = new.run_id AND old.load_seq < new.load_seq)"
    return sql.SQL("""
        DELETE FROM {table} AS new
        USING {table} AS old
        WHERE new.run_id = %(run_id)s
          AND {candidates}
          AND old.record_id = new.record_id
          AND old.source_updated_at IS NOT DISTINCT FROM new.source_updated_at
          AND old.payload = new.payload
          AND {earlier}
    """).format(table=sql.Identifier("raw", raw_table), candidates=sql.SQL(candidates),
                earlier=sql.SQL(earlier))


def _copy_text(value) -> bytes:
    """A value in COPY text format: NULL as \\N; backslash, tab, newlines escaped."""
    if value is None:
        return b"\\N"
    text = value if isinstance(value, str) else str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = (text.replace("\\", "\\\\").replace("\t", "\\t")
                .replace("\n", "\\n").replace("\r", "\\r"))
    return text.encode()


class RecordEncoder:
    """Turns a page of records into COPY text lines for the raw table."""

    def __init__(self, stream: Stream, run_id: int,
                 key_getter: Callable, updated_getter: Callable | None):
        self.stream = stream
        self.run_id = str(run_id).encode()
        self.key_of = key_getter
        self.updated_of = updated_getter
        self.unparseable_times = 0

    def encode(self, records: list) -> bytes:
        lines = []
        for record in records:
            key = self.key_of(record)
            if key is None or key == "":
                raise MissingPrimaryKey(self.stream, record)
            updated = None
            if self.updated_of is not None:
                updated = self.updated_of(record)
                if updated is not None:
                    moment = parse_time(updated)
                    if moment is None:
                        self.unparseable_times += 1  # kept in the payload; quality flags it
                    # the parsed time, in UTC: epoch milliseconds and naive times too
                    updated = moment.isoformat() if moment is not None else None
            payload = orjson.dumps(record)
            if b"\\" in payload:
                payload = payload.replace(b"\\", b"\\\\")
            lines.append(b"%s\t%s\t%s\t%s\n" % (_copy_text(key), _copy_text(updated),
                                                payload, self.run_id))
        return b"".join(lines)


class MissingPrimaryKey(ValueError):
    def __init__(self, stream: Stream, record):
        preview = orjson.dumps(record)[:300].decode(errors="replace")
        super().__init__(
            f"{stream.system.upper()} {stream.name}: a record has no `{stream.primary_key}` "
            f"(contract violation): {preview}"
        )
