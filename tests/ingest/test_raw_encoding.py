"""COPY encoding of source records (no I/O)."""

from psops import catalogue
from psops.connectors.paginators import path_getter
from psops.connectors.raw_loader import RecordEncoder


def _encoder():
    stream = catalogue.system("psa").stream("time_entries")
    return RecordEncoder(stream, 7, path_getter("id"), path_getter("updated_at"))


def test_update_times_are_written_parsed_in_utc():
    lines = _encoder().encode([
        {"id": 1, "updated_at": "2026-03-02T14:05:00Z"},
        {"id": 2, "updated_at": "1772460300000"},  # epoch milliseconds
        {"id": 3, "updated_at": "2026-03-02T14:05:00"},  # naive: read as UTC
    ]).decode().splitlines()
    times = [line.split("\t")[1] for line in lines]
    assert times == ["2026-03-02T14:05:00+00:00"] * 3


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
