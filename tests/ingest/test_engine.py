"""The connector engine over real HTTP against the sandbox, into a real PostgreSQL."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from psops import catalogue
from tests.ingest.conftest import loaded_keys, run_stream, value

# (system, stream, sandbox table, odd page size): every incremental stream of the catalogue
PAGED_STREAMS = [
    ("crm", "deals", ("crm", "deals"), 7),
    ("crm", "companies", ("crm", "companies"), 3),
    ("psa", "projects", ("psa", "projects"), 4),
    ("psa", "milestones", ("psa", "milestones"), 13),
    ("psa", "assignments", ("psa", "assignments"), 17),
    ("psa", "expenses", ("psa", "expenses"), 97),
    ("psa", "change_requests", ("psa", "change_requests"), 5),
    ("psa", "time_entries", ("psa", "time_entries"), 1999),
    ("erp", "customers", ("erp", "customer"), 6),
    ("erp", "jobs", ("erp", "job"), 7),
    ("erp", "billing_milestones", ("erp", "billingMilestone"), 11),
    ("erp", "rate_cards", ("erp", "customrecord_rate_card"), 4),
    ("erp", "invoices", ("erp", "invoice"), 23),
    ("erp", "purchase_orders", ("erp", "purchaseOrder"), 3),
]


def test_every_paged_stream_of_the_catalogue_is_exercised():
    paged = {(s.system, s.name) for s in catalogue.streams() if not s.snapshot}
    assert {(system, stream) for system, stream, _, _ in PAGED_STREAMS} == paged


def sandbox_keys(sb, system: str, table: str) -> list[str]:
    """The records the sandbox holds now: the ground truth a sync must land."""
    if (system, table) == ("psa", "time_entries"):
        return [str(i) for i in sb.dataset.time_entries.ids().tolist()]
    return [str(record["id"]) for record in getattr(sb.dataset, system)[table].all()]


@pytest.mark.parametrize("system, stream, source, page_size", PAGED_STREAMS,
                         ids=[f"{s}-{n}-{p}" for s, n, _, p in PAGED_STREAMS])
def test_paginator_reads_to_the_end_at_odd_page_sizes(database_factory, sandbox_env, system,
                                                      stream, source, page_size):
    target = database_factory.create()
    result = run_stream(target, system, stream, page_size=page_size)
    expected = sandbox_keys(sandbox_env, *source)
    keys = loaded_keys(target, system, stream)
    assert sorted(keys) == sorted(expected)  # every record, once: no loss, no duplicate
    assert result.new_versions == len(expected)
    assert result.pages >= len(expected) // page_size
    assert result.watermark_after is not None


def test_hris_snapshot_streams(database_factory, sandbox_env):
    target = database_factory.create()
    employees = run_stream(target, "hris", "employees")
    assert sorted(loaded_keys(target, "hris", "employees")) == sorted(
        str(e["id"]) for e in sandbox_env.dataset.employees)
    assert employees.mode == "snapshot" and employees.watermark_after is None
    requests = run_stream(target, "hris", "time_off_requests")
    holidays = run_stream(target, "hris", "whos_out")
    assert requests.records > 0 and holidays.records > 0
    with psycopg.connect(target.conninfo()) as conn:
        window_start, window_end = conn.execute(
            "SELECT window_start::date, window_end::date FROM ops.ingest_runs "
            "WHERE stream = 'time_off_requests'").fetchone()
        kinds = {kind for (kind,) in conn.execute(
            "SELECT DISTINCT payload->>'type' FROM raw.hris_whos_out")}
    # 400 days before, 120 after
    assert [window_start.isoformat(), window_end.isoformat()] == ["2025-02-24", "2026-07-29"]
    assert "holiday" in kinds


def test_incremental_second_run_reads_only_the_overlap(database_factory, sandbox_env):
    target = database_factory.create()
    first = run_stream(target, "psa", "projects")
    sandbox_env.touch("psa", "projects", count=3)
    second = run_stream(target, "psa", "projects")
    assert second.records < first.records
    assert second.watermark_after > first.watermark_after
    latest = value(
        target,
        """SELECT count(*) FROM (SELECT DISTINCT ON (record_id) record_id, source_updated_at
                                 FROM raw.psa_projects
                                 ORDER BY record_id, source_updated_at DESC, load_seq DESC) t
           WHERE source_updated_at = %s""", (second.watermark_after,))
    assert latest == 3


def test_crm_sync_past_the_10000_result_cap(database_factory, monkeypatch):
    """12,345 deals: one query may page through 10,000; the engine restarts from the last
    hs_lastmodifieddate it saw and still lands every deal once."""
    from sandbox.server import start_sandbox

    with start_sandbox(seed=5, port=0, crm_deals=12_345,
                       faults={"natural_limits": False}) as big:
        for key, setting in big.conn_env().items():
            monkeypatch.setenv(key, setting)
        target = database_factory.create()
        result = run_stream(target, "crm", "deals")
        expected = sandbox_keys(big, "crm", "deals")
    assert len(expected) >= 12_345
    assert set(loaded_keys(target, "crm", "deals")) == set(expected)
    assert result.distinct_records == len(expected)
    assert result.records >= len(expected)  # restarts re-read the boundary timestamp


def test_erp_offset_paging_under_concurrent_updates_loses_nothing(database_factory, sandbox_env):
    """Records updated while the engine pages move to the end and shift the offsets back:
    overlapping pages catch the shifted records, and the final count check against
    totalResults proves none was lost."""
    target = database_factory.create()
    sandbox_env.set_faults(latency_ms=30, systems=["erp"])
    stop = threading.Event()

    def update_while_paging():
        while not stop.is_set():
            sandbox_env.touch("erp", "invoice", count=2)
            time.sleep(0.05)

    updater = threading.Thread(target=update_while_paging, daemon=True)
    updater.start()
    try:
        result = run_stream(target, "erp", "invoices", page_size=9)
    finally:
        stop.set()
        updater.join()
    expected = set(sandbox_keys(sandbox_env, "erp", "invoice"))
    assert set(loaded_keys(target, "erp", "invoices")) == expected
    assert result.distinct_records == len(expected)


def test_erp_token_expiry_mid_run(database_factory, sandbox_env):
    target = database_factory.create()
    sandbox_env.set_faults(token_lifetime=1, latency_ms=150, systems=["erp"])
    result = run_stream(target, "erp", "invoices", page_size=20)
    assert set(loaded_keys(target, "erp", "invoices")) == set(
        sandbox_keys(sandbox_env, "erp", "invoice"))
    assert result.retries >= 1  # at least one 401 answered by fetching a new token


@pytest.mark.parametrize("system, stream, source, faults", [
    ("psa", "milestones", ("psa", "milestones"), {"throttle_rate": 0.3, "retry_after": 0}),
    ("crm", "companies", ("crm", "companies"), {"throttle_rate": 0.3, "retry_after": 0}),
    ("erp", "jobs", ("erp", "job"), {"throttle_rate": 0.3}),  # 429 without Retry-After
    ("hris", "employees", None, {"throttle_rate": 0.5, "retry_after": 0}),  # 503 + Retry-After
    ("psa", "assignments", ("psa", "assignments"), {"error_rate": 0.3}),  # 5xx bursts
])
def test_throttling_and_5xx_are_absorbed(database_factory, sandbox_env, system, stream, source,
                                         faults):
    target = database_factory.create()
    sandbox_env.set_faults(**faults, systems=[system])
    result = run_stream(target, system, stream, page_size=20 if source else None)
    if source:
        expected = sandbox_keys(sandbox_env, *source)
    else:
        expected = [str(e["id"]) for e in sandbox_env.dataset.employees]
    assert sorted(set(loaded_keys(target, system, stream))) == sorted(expected)
    assert result.retries > 0 and result.failed_requests > 0
    if "throttle_rate" in faults:
        assert result.throttled > 0
    with psycopg.connect(target.conninfo()) as conn:
        recorded = conn.execute(
            "SELECT status, retries, throttled, failed_requests, requests FROM ops.ingest_runs "
            "WHERE id = %s", (result.run_id,)).fetchone()
    assert recorded == ("succeeded", result.retries, result.throttled, result.failed_requests,
                        result.requests)


def test_duplicate_copies_across_pages_are_kept_and_counted_once(database_factory, sandbox_env):
    target = database_factory.create()
    sandbox_env.set_faults(anomaly_rate=0.05, systems=["psa"])
    result = run_stream(target, "psa", "time_entries", page_size=500)
    with psycopg.connect(target.conninfo()) as conn:
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT record_id) FROM raw.psa_time_entries").fetchone()
    assert distinct == result.distinct_records
    assert total >= distinct


KILLABLE_RUN = """
import sys
from datetime import date
import psycopg
from psops import catalogue
from psops.connectors.engine import StreamRun
from tests.ingest.conftest import with_page_size
spec = catalogue.system("psa")
stream = with_page_size(spec.stream("time_entries"), 200)
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    StreamRun(spec, stream, conn, dag_id="psops_ingest_psa", dag_run_id="killed",
              as_of=date(2026, 3, 31)).execute()
"""


def test_kill_between_pages_then_rerun(database_factory, sandbox_env, tmp_path):
    """SIGKILL mid-stream leaves no rows and no watermark; the re-run lands every record once."""
    import os
    import signal
    import subprocess
    import sys

    target = database_factory.create()
    sandbox_env.set_faults(latency_ms=100, systems=["psa"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["plugins", "include", "."])}
    process = subprocess.Popen([sys.executable, "-c", KILLABLE_RUN, target.conninfo()], env=env,
                               cwd=str(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    try:
        _wait_for_pages(sandbox_env, minimum=5, timeout=60)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert value(target, "SELECT count(*) FROM raw.psa_time_entries") == 0
    assert value(target, "SELECT count(*) FROM ops.watermarks") == 0
    with psycopg.connect(target.conninfo()) as conn:
        assert conn.execute("SELECT status FROM ops.ingest_runs").fetchall() == [("running",)]

    sandbox_env.set_faults(reset=True)
    result = run_stream(target, "psa", "time_entries", page_size=2000)
    expected = sandbox_keys(sandbox_env, "psa", "time_entries")
    with psycopg.connect(target.conninfo()) as conn:
        rows, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT record_id) FROM raw.psa_time_entries").fetchone()
    watermark = value(target, "SELECT watermark FROM ops.watermarks "
                              "WHERE system = 'psa' AND stream = 'time_entries'")
    newest = value(target, "SELECT max((payload->>'updated_at')::timestamptz) "
                           "FROM raw.psa_time_entries")
    assert rows == distinct == len(expected) == result.new_versions
    assert set(loaded_keys(target, "psa", "time_entries")) == set(expected)
    assert watermark == newest
    with psycopg.connect(target.conninfo()) as conn:  # the killed run, found by the re-run
        assert conn.execute("SELECT status, error FROM ops.ingest_runs WHERE id <> %s",
                            (result.run_id,)).fetchall() == [(
            "abandoned", "abandoned: the run's process ended without recording an outcome; "
                         f"found by run {result.run_id}")]


def _wait_for_pages(sb, minimum: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    before = _psa_requests(sb)
    while _psa_requests(sb) - before < minimum:
        assert time.monotonic() < deadline, "the stream never started paging"
        time.sleep(0.1)


def _psa_requests(sb) -> int:
    return sb.stats()["psa"]["requests"]
