"""psops_transform at scale: 1,000,000 time entries, full build and after a 1% change.

Ingests every stream from a sandbox (own process) through the real engine, then runs the
transform the way its DAG tasks do (stage → quality gates with GX → publish marts), in
one process, timing each step. Then 1% of the time entries change at the source, the PSA
time entries are ingested again (incrementally) and the transform runs again.

    .venv/bin/python benchmarks/transform_scale.py [--time-entries N] [--no-gx]
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import bench_env
import psycopg
import requests

from psops.connectors.engine import StreamRun
from psops.connectors.spec import load_spec
from psops.transform import runner

AS_OF = date(2026, 3, 31)


def ingest(target, systems=("crm", "psa", "erp", "hris"), streams=None) -> float:
    started = time.perf_counter()
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        for system in systems:
            spec = load_spec(system)
            for stream in spec.streams:
                if streams and stream.name not in streams:
                    continue
                StreamRun(spec, stream, conn, dag_id=f"psops_ingest_{system}",
                          dag_run_id=f"bench-{time.time()}", as_of=AS_OF).execute()
    return time.perf_counter() - started


def transform(target, gx: bool) -> dict:
    timings = {}
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        run_id = runner.start_run(conn, AS_OF, "bench")
        _, timings["stage"] = bench_env.timed(runner.stage, conn, run_id)
        _, timings["quality"] = bench_env.timed(
            runner.check_quality, conn, AS_OF, run_id,
            gx_url=target.sqlalchemy_url() if gx else None)
        _, timings["publish"] = bench_env.timed(runner.publish, conn, AS_OF, run_id)
    timings["total"] = sum(timings.values())
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time-entries", type=int, default=1_000_000)
    parser.add_argument("--no-gx", action="store_true")
    args = parser.parse_args()
    gx = not args.no_gx
    with bench_env.sandbox_process("--time-entries", str(args.time_entries)) as sandbox, \
            bench_env.bench_database() as target:
        ingest_s = ingest(target)
        full = transform(target, gx)
        changed = args.time_entries // 100
        response = requests.post(f"{sandbox['psa_url']}/_sandbox/touch", timeout=300,
                                 json={"system": "psa", "resource": "time_entries",
                                       "count": changed})
        response.raise_for_status()
        reingest_s = ingest(target, systems=("psa",), streams={"time_entries"})
        incremental = transform(target, gx)
    print(f"time entries: {args.time_entries:,}; GX {'on' if gx else 'off'}")
    print(f"ingest, all streams (engine)          {ingest_s:8.1f} s")
    print(f"transform, full          {full['total']:8.1f} s  (stage {full['stage']:.1f}, "
          f"quality {full['quality']:.1f}, publish {full['publish']:.1f})")
    print(f"re-ingest after a 1% change ({changed:,} entries) {reingest_s:6.1f} s")
    print(f"transform, after 1%      {incremental['total']:8.1f} s  (stage "
          f"{incremental['stage']:.1f}, quality {incremental['quality']:.1f}, publish "
          f"{incremental['publish']:.1f})")
    print(f"after-1% / full = {incremental['total'] / full['total']:.2f}")


if __name__ == "__main__":
    main()
