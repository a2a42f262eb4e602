"""Ingest throughput: sandbox (1,000,000 time entries) → raw through the real engine.

In one run, on the same logged raw table (raw.psa_time_entries, with its index):
  engine   the connector engine (SourceApiHook + next_link paging + COPY, fetch and COPY
           overlapped), called in-process as the DAG task calls it (no Airflow start-up);
  ceiling  `psql \\copy` of the same records from a file;
  naive    the same HTTP pages (requests + .json()), then PostgresHook.insert_rows.
Prints rows/s and the ratios (goals: engine >= 60% of the ceiling, >= 2x naive).

    .venv/bin/python benchmarks/ingest_throughput.py [--time-entries N]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from datetime import date
from pathlib import Path

import bench_env
import requests
from psycopg import sql

from psops import catalogue
from psops.connectors.ingest_task import run_stream
from psops.db import scalar, warehouse_connection
from psops.settings import WAREHOUSE_CONN_ID
from tests.warehouse_fixtures import pg_bin

SYSTEM = "psa"
STREAM = catalogue.system(SYSTEM).stream("time_entries")
TABLE = sql.Identifier("raw", STREAM.raw_table)
COLUMNS = ["record_id", "source_updated_at", "payload", "run_id"]


def engine_run() -> int:
    """As the ingest DAG's task runs a stream: the ingest step on the `warehouse` connection."""
    result = run_stream(SYSTEM, STREAM.name, dag_id=catalogue.ingest_dag_id(SYSTEM),
                        dag_run_id="bench", as_of=date(2026, 3, 31))
    return result["records"]


def truncate_raw() -> None:
    with warehouse_connection(autocommit=True, migrate=False) as conn:
        conn.execute(sql.SQL("TRUNCATE {}").format(TABLE))


def raw_rows() -> int:
    with warehouse_connection(migrate=False) as conn:
        return scalar(conn, sql.SQL("SELECT count(*) FROM {}").format(TABLE))


def export_raw(rows_file: Path) -> None:
    """The engine's rows in COPY text format, for the ceiling run."""
    statement = sql.SQL("COPY {} ({}) TO STDOUT").format(
        TABLE, sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
    with warehouse_connection(migrate=False) as conn, open(rows_file, "wb") as out:
        with conn.cursor().copy(statement) as copy:
            for chunk in copy:
                out.write(chunk)


def ceiling_run(target, rows_file: Path) -> int:
    truncate_raw()
    command = f"\\copy {STREAM.table} ({', '.join(COLUMNS)}) FROM '{rows_file}'"
    subprocess.run([str(pg_bin("psql")), target.conninfo(), "-q", "-c", command], check=True)
    return raw_rows()


def naive_run(psa_url: str, account: str, token: str) -> int:
    """What a peer would write: page with requests, insert_rows into the same table."""
    import json

    from airflow.providers.postgres.hooks.postgres import PostgresHook

    truncate_raw()
    headers = {"Authorization": f"Bearer {token}", "PSA-Account-Id": account,
               "User-Agent": "naive-bench"}
    hook = PostgresHook(postgres_conn_id=WAREHOUSE_CONN_ID)
    url = f"{psa_url}/v2/time_entries?per_page=2000"
    inserted = 0
    with requests.Session() as session:
        while url:
            data = session.get(url, headers=headers, timeout=60).json()
            rows = [(str(r["id"]), r["updated_at"], json.dumps(r), 0) for r in data["time_entries"]]
            hook.insert_rows(STREAM.table, rows, target_fields=COLUMNS, commit_every=2000)
            inserted += len(rows)
            url = data["links"]["next"]
    return inserted


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time-entries", type=int, default=1_000_000)
    args = parser.parse_args()
    import json
    import os

    with bench_env.sandbox_process("--time-entries", str(args.time_entries)) as sandbox, \
            bench_env.bench_database() as target, tempfile.TemporaryDirectory() as scratch:
        psa = json.loads(os.environ["AIRFLOW_CONN_PSA_API"])
        engine_rows, engine_s = bench_env.timed(engine_run)
        rows_file = Path(scratch) / "time_entries.copy"
        os.chmod(scratch, 0o755)
        export_raw(rows_file)
        ceiling_rows, ceiling_s = bench_env.timed(ceiling_run, target, rows_file)
        naive_rows, naive_s = bench_env.timed(naive_run, sandbox["psa_url"],
                                              psa["login"], psa["password"])
    rates = {name: rows / seconds for name, rows, seconds in (
        ("engine", engine_rows, engine_s), ("ceiling", ceiling_rows, ceiling_s),
        ("naive", naive_rows, naive_s))}
    print(f"time entries served: {args.time_entries:,} (sandbox in its own process)")
    print(f"engine  (HTTP + COPY, overlapped) {engine_rows:>10,} rows {engine_s:7.1f} s "
          f"{rates['engine']:>10,.0f} rows/s")
    print(f"ceiling (psql \\copy from a file)  {ceiling_rows:>10,} rows {ceiling_s:7.1f} s "
          f"{rates['ceiling']:>10,.0f} rows/s")
    print(f"naive   (HTTP + insert_rows)       {naive_rows:>10,} rows {naive_s:7.1f} s "
          f"{rates['naive']:>10,.0f} rows/s")
    print(f"engine / ceiling = {rates['engine'] / rates['ceiling']:.2f}  (goal >= 0.60)")
    print(f"engine / naive   = {rates['engine'] / rates['naive']:.2f}  (goal >= 2.0)")


if __name__ == "__main__":
    main()
