"""COPY encoding of source records (and one check that PostgreSQL reads its times)."""

from datetime import UTC, datetime

from psops import catalogue
from psops.connectors.paginators import path_getter
from psops.connectors.raw_loader import RecordEncoder


def _encoder():
    stream = catalogue.system("psa").stream("time_entries")
    return RecordEncoder(stream, 7, path_getter("id"), path_getter("updated_at"))


# Update times as sources send them, and the instant each one is.
SOURCE_TIMES = {
    "2026-03-02T14:05:00Z": "2026-03-02T14:05:00+00:00",
    "1772460300000": "2026-03-02T14:05:00+00:00",  # epoch milliseconds
    "2026-03-02T14:05:00": "2026-03-02T14:05:00+00:00",  # naive: read as UTC
    "2026-03-02T19:35:00.25+05:30": "2026-03-02T14:05:00.250000+00:00",
    "2026-03-02T02:05:00-12:00": "2026-03-02T14:05:00+00:00",
    "2026-03-03T08:05:00+18:00": "2026-03-02T14:05:00+00:00",  # PostgreSQL refuses +18
    "2026-03-02 14:05:00+00:00": "2026-03-02T14:05:00+00:00",
    "20260302T140500Z": "2026-03-02T14:05:00+00:00",  # basic format
    "2026-W10-1T14:05:00Z": "2026-03-02T14:05:00+00:00",  # week date
    "9999-12-31T23:00:00+05:00": "9999-12-31T18:00:00+00:00",
}


def test_times_beyond_the_calendar_in_utc_are_unparseable_not_a_failed_page():
    encoder = _encoder()
    page = encoder.encode([{"id": 1, "updated_at": "9999-12-31 23:00:00-05:00"},
                           {"id": 2, "updated_at": "0001-01-01T00:00:00+01:00"},
                           {"id": 3, "updated_at": "9" * 30}])  # epoch milliseconds
    assert [line.split("\t")[1] for line in page.decode().splitlines()] == ["\\N"] * 3
    assert encoder.unparseable_times == 3


def _encoded_times(values) -> list[str]:
    lines = _encoder().encode([{"id": i, "updated_at": value} for i, value in enumerate(values)])
    return [line.split("\t")[1] for line in lines.decode().splitlines()]


def test_update_times_are_written_as_their_instant():
    written = _encoded_times(SOURCE_TIMES)
    assert [datetime.fromisoformat(text).astimezone(UTC).isoformat() for text in written] == \
        list(SOURCE_TIMES.values())


def test_postgresql_reads_each_written_time_as_the_same_instant(warehouse_conn):
    """What COPY stores is what Python read: texts passed as they came included."""
    warehouse_conn.execute("CREATE TEMP TABLE copied_times (n int, at timestamptz)")
    written = _encoded_times(SOURCE_TIMES)
    with warehouse_conn.cursor().copy("COPY copied_times FROM STDIN") as copy:
        for n, text in enumerate(written):
            copy.write_row((n, text))
    stored = warehouse_conn.execute(
        "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') "
        "FROM copied_times ORDER BY n").fetchall()
    assert [text + "+00:00" for (text,) in stored] == [
        datetime.fromisoformat(value).isoformat(timespec="microseconds")
        for value in SOURCE_TIMES.values()]


def test_unparseable_time_is_null_and_counted_and_special_characters_escaped():
    encoder = _encoder()
    line = encoder.encode([{"id": 9, "updated_at": "yesterday", "notes": "tab\there \\ back"}])
    record_id, updated, payload, run_id = line.decode().rstrip("\n").split("\t")
    assert (record_id, updated, run_id) == ("9", "\\N", "7")
    assert encoder.unparseable_times == 1
    assert "\\\\t" in payload and "\\\\\\\\" in payload  # JSON escapes, then COPY escapes


def test_records_that_cannot_be_loaded_are_kept_as_rejects_not_lines():
    encoder = _encoder()
    lines = encoder.encode([
        {"id": 1, "notes": "a literal \\u0000 is text", "updated_at": "2026-03-02T14:05:00Z"},
        {"id": 2, "notes": "nul \u0000 here"},
        {"notes": "no id"},
        ["a", "list"],
    ]).decode().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["1"]
    rejects = list(encoder.rejects.values())
    assert [(r.record_key, r.reason.split(":")[0]) for r in rejects] == [
        ("2", "NUL character"), (None, "missing primary key"), (None, "not a JSON object")]
    assert "\u0000" not in rejects[0].raw_text and "\\u0000" in rejects[0].raw_text


def test_a_composite_key_joins_its_parts():
    key_of = path_getter(("type", "id"))
    assert key_of({"type": "holiday", "id": 12}) == "holiday:12"
    assert key_of({"type": "holiday"}) is None
    assert catalogue.system("hris").stream("whos_out").primary_key == ("type", "id")
