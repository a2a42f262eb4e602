"""psops_transform at scale: 1,000,000 time entries, full build and after a 1% change.

Ingests every stream from a sandbox (own process) through the real engine, then runs the
transform through the step functions its DAG tasks call (stage → quality gates with GX →
publish marts), in one process, timing each step. Then 1% of the time entries change at the source, the PSA
time entries are ingested again (incrementally) and the transform runs again; then once
more with nothing changed (the floor: what every run costs whatever changed).

    .venv/bin/python benchmarks/transform_scale.py [--time-entries N] [--no-gx]
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import bench_env
import requests

from psops import catalogue
from psops.connectors.ingest_task import run_stream
from psops.transform import steps

AS_OF = date(2026, 3, 31)


def ingest(systems=None, streams=None) -> float:
    """As the ingest DAGs' tasks run their streams: the ingest step on the `warehouse`
    connection, stream after stream."""
    started = time.perf_counter()
    for system in systems or catalogue.system_names():
        for stream in catalogue.system(system).streams:
            if streams and stream.name not in streams:
                continue
            run_stream(system, stream.name, dag_id=catalogue.ingest_dag_id(system),
                       dag_run_id=f"bench-{time.time()}", as_of=AS_OF)
    return time.perf_counter() - started


def transform(gx: bool) -> dict:
    """The steps on the Airflow connection `warehouse` (bench_env.bench_database)."""
    timings = {}
    staged, timings["stage"] = bench_env.timed(steps.stage, AS_OF, "bench")
    _, timings["quality"] = bench_env.timed(steps.check_quality, AS_OF, staged.run_id,
                                            with_gx=gx)
    _, timings["publish"] = bench_env.timed(steps.publish, AS_OF, staged.run_id)
    timings["total"] = sum(timings.values())
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time-entries", type=int, default=1_000_000)
    parser.add_argument("--no-gx", action="store_true")
    args = parser.parse_args()
    gx = not args.no_gx
    with bench_env.sandbox_process("--time-entries", str(args.time_entries)) as sandbox, \
            bench_env.bench_database():
        ingest_s = ingest()
        full = transform(gx)
        changed = args.time_entries // 100
        response = requests.post(f"{sandbox['psa_url']}/_sandbox/touch", timeout=300,
                                 json={"system": "psa", "resource": "time_entries",
                                       "count": changed})
        response.raise_for_status()
        reingest_s = ingest(systems=("psa",), streams={"time_entries"})
        incremental = transform(gx)
        unchanged = transform(gx)  # the floor: what a run costs when nothing changed
    print(f"time entries: {args.time_entries:,}; GX {'on' if gx else 'off'}")
    print(f"ingest, all streams (engine)          {ingest_s:8.1f} s")
    print(f"transform, full          {full['total']:8.1f} s  (stage {full['stage']:.1f}, "
          f"quality {full['quality']:.1f}, publish {full['publish']:.1f})")
    print(f"re-ingest after a 1% change ({changed:,} entries) {reingest_s:6.1f} s")
    print(f"transform, after 1%      {incremental['total']:8.1f} s  (stage "
          f"{incremental['stage']:.1f}, quality {incremental['quality']:.1f}, publish "
          f"{incremental['publish']:.1f})")
    print(f"transform, nothing changed {unchanged['total']:6.1f} s  (stage "
          f"{unchanged['stage']:.1f}, quality {unchanged['quality']:.1f}, publish "
          f"{unchanged['publish']:.1f}): the floor")
    print(f"after-1% / full = {incremental['total'] / full['total']:.2f}; "
          f"(after-1% - floor) / full = "
          f"{(incremental['total'] - unchanged['total']) / full['total']:.3f} (goal <= 0.05)")


if __name__ == "__main__":
    main()
