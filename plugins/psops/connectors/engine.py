"""The connector engine: runs one stream of any spec from the API into raw.
(About 380 lines: one stream run's steps share its state, kept in one class.)

For one stream run, holding the stream's run lock (psops.run_lock):
  1. record the run in ops.ingest_runs (status running), mark the stream's earlier runs
     still `running` abandoned (their process ended: the lock was free), read the
     watermark;
  2. page through the API from (watermark - overlap), or from the epoch on a
     first run (a stored watermark after the run's start, left by a record dated in the
     future before the cap of step 4, is replaced by the one before the run that moved
     it there, or the epoch), while COPY streams every page into the raw table: a
     background thread fetches the next page while the current one is copied,
     through a small bounded queue (bounded memory); a record that cannot be loaded
     as it is goes to ops.ingest_rejects instead (psops.connectors.rejects);
  3. for paginated streams, prove nothing was skipped: the distinct records
     loaded must cover what the API says matches the query now (offset paging
     over changing data can skip a record); if not, page through again;
  4. advance the watermark to the latest update time loaded, but never past the run's
     start minus the overlap (a record dated in the future must not hide later
     changes), and mark the run succeeded, in the same transaction as the load. A
     crash anywhere before the commit leaves no rows and the old watermark.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

import psycopg
from psycopg import sql

from psops import run_lock
from psops.connectors import paginators
from psops.connectors.raw_loader import (
    COPY_COLUMNS,
    RecordEncoder,
    drop_repeated_copies_sql,
    ensure_raw_table,
)
from psops.connectors.rejects import record_rejects
from psops.connectors.request_template import RequestTemplate
from psops.connectors.source_api_hook import SourceApiError, SourceApiHook
from psops.connectors.spec import ConnectorSpec, Stream
from psops.db import scalar
from psops.settings import INGEST_STREAM_LOCK_CLASS

log = logging.getLogger(__name__)

MAX_PASSES = 3
PREFETCH_PAGES = 4
PROGRESS_EVERY_S = 10.0


def stream_lock_key(system: str, stream: str) -> tuple[int, str]:
    """Parameters of `pg_advisory_lock(%s, hashtext(%s))` for one stream's runs."""
    return INGEST_STREAM_LOCK_CLASS, f"{system}.{stream}"


@dataclass
class StreamResult:
    system: str
    stream: str
    run_id: int
    mode: str
    passes: int
    pages: int
    records: int  # records received (overlaps and repeated copies included)
    distinct_records: int  # distinct record ids received
    new_versions: int  # rows kept in raw: record versions raw did not hold yet
    rejected: int  # records that could not be loaded (ops.ingest_rejects)
    requests: int
    retries: int
    throttled: int
    failed_requests: int
    watermark_before: str | None
    watermark_after: str | None
    duration_s: float

    def summary(self) -> str:
        rate = self.records / self.duration_s if self.duration_s else 0.0
        return (f"{self.system.upper()} {self.stream}: loaded {self.records:,} records "
                f"({self.distinct_records:,} distinct, {self.new_versions:,} new versions"
                f"{f', {self.rejected:,} rejected' if self.rejected else ''}) "
                f"in {self.pages:,} pages, "
                f"{self.duration_s:.1f} s ({rate:,.0f}/s); {self.requests} requests, "
                f"{self.retries} retries, {self.throttled} throttled; "
                f"watermark {self.watermark_before or 'none'} -> {self.watermark_after or 'none'}")

    def as_dict(self) -> dict:
        return asdict(self)


def make_hook(spec: ConnectorSpec, max_attempts: int | None = None) -> SourceApiHook:
    """The HTTP hook of the spec's system (connection, auth style, token path)."""
    return SourceApiHook(http_conn_id=spec.conn_id, auth_style=spec.auth, system=spec.system,
                         token_path=spec.token_path, max_attempts=max_attempts)


class StreamRun:
    """One run of one stream; `execute` does the whole job."""

    def __init__(self, spec: ConnectorSpec, stream: Stream, conn, *, dag_id: str,
                 dag_run_id: str, as_of: date, hook: SourceApiHook | None = None):
        self.spec = spec
        self.stream = stream
        self.conn = conn
        self.dag_id = dag_id
        self.dag_run_id = dag_run_id
        self.as_of = as_of
        self.hook = hook or make_hook(spec)
        self.table = sql.Identifier("raw", stream.raw_table)
        self.pages = 0
        self.records = 0
        self.rejected = 0
        self.started = time.monotonic()
        self.started_at: datetime | None = None  # the run's start, warehouse clock

    @property
    def label(self) -> str:
        return f"{self.spec.system.upper()} {self.stream.name}"

    def execute(self) -> StreamResult:
        self.conn.autocommit = True
        lock_key = stream_lock_key(self.spec.system, self.stream.name)
        run_lock.take(self.conn, "SELECT pg_advisory_lock(%s, hashtext(%s))", lock_key,
                      self.label)
        try:
            result = self._execute_locked()
        finally:
            self._unlock(lock_key)
        log.info("%s", result.summary())
        return result

    def _unlock(self, lock_key: tuple[int, str]) -> None:
        try:
            self.conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", lock_key)
        except psycopg.Error:  # a lost connection took its lock with it
            log.warning("%s: could not release the run lock", self.label, exc_info=True)

    def _execute_locked(self) -> StreamResult:
        ensure_raw_table(self.conn, self.stream.raw_table)
        watermark_before = self._read_watermark()
        template = RequestTemplate(self.stream, self.as_of, self.hook.connection.extra_dejson,
                                   self.label)
        run_id = self._start_run(watermark_before, template)
        self._abandon_earlier_runs(run_id)
        try:
            with self.conn.transaction():
                return self._load(run_id, watermark_before, template)
        except BaseException as err:
            self._fail_run(run_id, err)
            raise

    # -- the load --------------------------------------------------------------

    def _load(self, run_id: int, watermark_before: datetime | None,
              template: RequestTemplate) -> StreamResult:
        stream = self.stream
        since = self._request_since(watermark_before)
        encoder = RecordEncoder(
            stream, run_id, paginators.path_getter(stream.primary_key),
            paginators.path_getter(stream.cursor_field) if stream.cursor_field else None)
        passes = 0
        while True:
            passes += 1
            self._copy_pass(template, since, encoder)
            distinct = self._distinct_loaded(run_id)
            if stream.snapshot:
                break
            matching = paginators.count_matching(stream, self.hook, template, since)
            if matching is None or distinct + len(encoder.rejects) >= matching:
                break
            if passes >= MAX_PASSES:
                raise SourceApiError(
                    f"{self.label}: {matching} records match but only {distinct} distinct were "
                    f"read after {passes} passes (data changing while paging); retry later"
                )
            log.warning("%s: %d records match but %d distinct were read (offset paging over "
                        "changing data skipped some); paging again", self.label, matching, distinct)
        new_versions = self._keep_new_versions_only(run_id, watermark_before)
        if encoder.unparseable_times:
            log.warning("%s: %d records have an unparseable `%s`; loaded with no update time "
                        "(quarantined by the transform's version_time_unparseable rule)",
                        self.label, encoder.unparseable_times, stream.cursor_field)
        self.rejected = len(encoder.rejects)
        record_rejects(self.conn, stream, run_id, list(encoder.rejects.values()), self.as_of)
        if self.rejected:
            log.warning("%s: %d records could not be loaded as they are; see "
                        "ops.ingest_rejects (ingest run %d) and the exception queue",
                        self.label, self.rejected, run_id)
        watermark_after = self._finish_run(run_id, watermark_before, passes)
        metrics = self.hook.metrics
        return StreamResult(
            system=self.spec.system, stream=stream.name, run_id=run_id,
            mode="snapshot" if stream.snapshot else "incremental", passes=passes,
            pages=self.pages, records=self.records, distinct_records=distinct,
            new_versions=new_versions, rejected=self.rejected,
            requests=metrics.requests, retries=metrics.retries, throttled=metrics.throttled,
            failed_requests=metrics.failed_requests,
            watermark_before=watermark_before.isoformat() if watermark_before else None,
            watermark_after=watermark_after.isoformat() if watermark_after else None,
            duration_s=round(time.monotonic() - self.started, 3),
        )

    def _request_since(self, watermark_before: datetime | None) -> datetime | None:
        """Where the run pages from: the watermark minus the overlap (None: the epoch).
        A stored watermark after the run's start was moved there by a record dated in the
        future (before the cap in _finish_run existed): trusting it would skip every change
        since, so page from the watermark before the run that moved it."""
        if watermark_before is None or self.stream.snapshot:
            return None
        trusted = watermark_before
        if watermark_before > self.started_at:
            jump_run, trusted = self._watermark_before_the_jump()
            log.warning("%s: the stored watermark %s is after this run's start; paging from %s "
                        "(%s)", self.label, watermark_before.isoformat(),
                        trusted.isoformat() if trusted else "the epoch",
                        f"the watermark before ingest run {jump_run} moved it past its start"
                        if jump_run else "no run on record explains it")
            if trusted is None:
                return None
        return trusted - timedelta(minutes=self.stream.overlap_minutes)

    def _watermark_before_the_jump(self) -> tuple[int | None, datetime | None]:
        """The stream's earliest run that moved the watermark past its own start, and the
        watermark it started from; (None, None) when there is no such run."""
        row = self.conn.execute(
            """SELECT id, watermark_before FROM ops.ingest_runs
               WHERE system = %s AND stream = %s AND watermark_after > started_at
               ORDER BY started_at, id LIMIT 1""",
            (self.spec.system, self.stream.name)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def _copy_pass(self, template: RequestTemplate, since, encoder: RecordEncoder) -> None:
        page_source = paginators.pages(self.stream, self.hook, template, since)
        last_progress = time.monotonic()
        with self.conn.cursor() as cursor:
            statement = sql.SQL("COPY {} {} FROM STDIN").format(self.table, COPY_COLUMNS)
            with cursor.copy(statement) as copy:
                for records in prefetched(page_source, PREFETCH_PAGES):
                    if records:
                        copy.write(encoder.encode(records))
                    self.pages += 1
                    self.records += len(records)
                    if time.monotonic() - last_progress >= PROGRESS_EVERY_S:
                        last_progress = time.monotonic()
                        self._log_progress()

    def _log_progress(self) -> None:
        elapsed = time.monotonic() - self.started
        log.info("%s: %d pages, %s records so far, %.0f records/s", self.label, self.pages,
                 f"{self.records:,}", self.records / elapsed if elapsed else 0)

    # -- ops bookkeeping -------------------------------------------------------

    def _read_watermark(self) -> datetime | None:
        return scalar(self.conn,
                      "SELECT watermark FROM ops.watermarks WHERE system = %s AND stream = %s",
                      (self.spec.system, self.stream.name))

    def _start_run(self, watermark_before, template: RequestTemplate) -> int:
        window = (template.values.get("window_start"), template.values.get("window_end"))
        run_id, self.started_at = self.conn.execute(
            """INSERT INTO ops.ingest_runs (dag_id, dag_run_id, system, stream, mode, status,
                                            window_start, window_end, watermark_before)
               VALUES (%s, %s, %s, %s, %s, 'running', %s, %s, %s) RETURNING id, started_at""",
            (self.dag_id, self.dag_run_id, self.spec.system, self.stream.name,
             "snapshot" if self.stream.snapshot else "incremental", *window,
             watermark_before)).fetchone()
        return run_id

    def _abandon_earlier_runs(self, run_id: int) -> None:
        """The stream's other runs still `running` lost their process (we hold the lock)."""
        abandoned = self.conn.execute(
            """UPDATE ops.ingest_runs SET status = 'abandoned', finished_at = now(), error = %s
               WHERE system = %s AND stream = %s AND status = 'running' AND id <> %s""",
            (run_lock.abandon_message(run_id), self.spec.system, self.stream.name,
             run_id)).rowcount
        if abandoned:
            log.warning("%s: marked %d earlier run(s) left running as abandoned",
                        self.label, abandoned)

    def _distinct_loaded(self, run_id: int) -> int:
        return scalar(self.conn, sql.SQL(
            "SELECT count(DISTINCT record_id) FROM {} WHERE run_id = %s").format(self.table),
            (run_id,))

    def _keep_new_versions_only(self, run_id: int, watermark_before) -> int:
        """Drop rows that repeat a version raw already holds; return the rows kept."""
        rows = self.records
        repeats_within_run = rows > self._distinct_loaded(run_id)
        repeats_earlier_run = watermark_before is not None and not self.stream.snapshot
        if repeats_within_run or repeats_earlier_run:
            self.conn.execute(
                drop_repeated_copies_sql(self.stream.raw_table, across_runs=repeats_earlier_run),
                {"run_id": run_id})
            rows = scalar(self.conn, sql.SQL(
                "SELECT count(*) FROM {} WHERE run_id = %s").format(self.table), (run_id,))
        return rows

    def _finish_run(self, run_id: int, watermark_before, passes: int) -> datetime | None:
        """Inside the load transaction: advance the watermark, record the metrics."""
        watermark_after = watermark_before
        if not self.stream.snapshot:
            loaded_max = scalar(self.conn, sql.SQL(
                "SELECT max(source_updated_at) FROM {} WHERE run_id = %s").format(self.table),
                (run_id,))
            seen = [moment for moment in (watermark_before, loaded_max) if moment is not None]
            if seen:
                cap = self.started_at - timedelta(minutes=self.stream.overlap_minutes)
                watermark_after = min(max(seen), cap)
            if watermark_after is not None:
                self.conn.execute(
                    """INSERT INTO ops.watermarks (system, stream, watermark, run_id)
                       VALUES (%s, %s, %s, %s)
                       ON CONFLICT (system, stream) DO UPDATE
                       SET watermark = EXCLUDED.watermark, run_id = EXCLUDED.run_id,
                           updated_at = now()""",
                    (self.spec.system, self.stream.name, watermark_after, run_id))
        self._update_run(run_id, "succeeded", watermark_after=watermark_after)
        return watermark_after

    def _update_run(self, run_id: int, status: str, watermark_after=None, error=None) -> None:
        metrics = self.hook.metrics
        self.conn.execute(
            """UPDATE ops.ingest_runs SET status = %s, watermark_after = %s, pages = %s,
                      records = %s, rejected = %s, requests = %s, retries = %s, throttled = %s,
                      failed_requests = %s, finished_at = now(), duration_s = %s, error = %s
               WHERE id = %s""",
            (status, watermark_after, self.pages, self.records, self.rejected,
             metrics.requests, metrics.retries, metrics.throttled, metrics.failed_requests,
             round(time.monotonic() - self.started, 3), error, run_id))

    def _fail_run(self, run_id: int, err: BaseException) -> None:
        try:
            self._update_run(run_id, "failed", error=f"{type(err).__name__}: {err}"[:4000])
        except Exception:  # the connection may be gone; the run stays 'running'
            log.exception("%s: could not record the failed run %s", self.label, run_id)


def prefetched(source, depth: int):
    """Iterate `source` in a background thread, at most `depth` items ahead."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def hand_over(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in source:
                if not hand_over(item):
                    return
            hand_over(done)
        except BaseException as err:  # handed to the consumer, raised there
            hand_over(err)

    thread = threading.Thread(target=produce, name="psops-page-fetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)
