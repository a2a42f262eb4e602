"""The whole pipeline at growing sizes: how its cost per row grows.

For each size (time entries; people and projects scaled to match, one person per
PEOPLE_EVERY time entries' worth), in a process of its own (so its peak memory is its
own): a sandbox with that data, a scratch warehouse, then the four ingests, the transform
(stage, quality gates with GX, publish) and the write-back plan, each timed, through the
step functions the DAG tasks call. Prints per-stage seconds, time entries per second, the
cost per row at each size against the middle size, and the worker's peak RSS.

    .venv/bin/python benchmarks/pipeline_scale.py [--sizes 100000,1000000,3000000] [--no-gx]

Goals (issue #13): cost per row at 3,000,000 within 1.2x of 1,000,000; peak RSS under
1 GiB at 3,000,000.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import bench_env

from psops.writeback import steps as writeback_steps

#: sandbox --scale per time entry: 1,000,000 entries come with 5x the standard firm
#: (750 people, ~250 projects), a consultant's few years of small entries
SCALE_PER_ENTRY = 5 / 1_000_000
STAGES = ("ingest", "stage", "quality", "publish", "plan")


def run_one(size: int, gx: bool) -> dict:
    import transform_scale

    timings = {}
    scale = max(0.5, size * SCALE_PER_ENTRY)
    with bench_env.sandbox_process("--time-entries", str(size), "--scale", f"{scale:.3f}"), \
            bench_env.bench_database():
        timings["ingest"] = transform_scale.ingest()
        transform = transform_scale.transform(gx)
        timings.update({stage: transform[stage] for stage in ("stage", "quality", "publish")})
        _, timings["plan"] = bench_env.timed(writeback_steps.plan, transform_scale.AS_OF,
                                             "bench-scale")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"size": size, "scale": scale, "timings": timings, "peak_rss_mib": peak_kib / 1024}


def measure(size: int, gx: bool) -> dict:
    """run_one in a fresh interpreter; its last stdout line is the JSON result."""
    command = [sys.executable, __file__, "--one", str(size)] + ([] if gx else ["--no-gx"])
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"size {size:,} failed:\n{result.stdout[-3000:]}{result.stderr[-5000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    measured["wall"] = time.perf_counter() - started
    return measured


def report(results: list[dict]) -> None:
    header = f"{'time entries':>12} {'people x':>8} " + " ".join(f"{s:>8}" for s in STAGES) \
        + f" {'total s':>8} {'rows/s':>9} {'us/row':>7} {'peak RSS':>9}"
    print(header)
    for r in results:
        total = sum(r["timings"].values())
        r["us_per_row"] = total / r["size"] * 1e6
        print(f"{r['size']:>12,} {r['scale']:>8.2f} "
              + " ".join(f"{r['timings'][s]:>8.1f}" for s in STAGES)
              + f" {total:>8.1f} {r['size'] / total:>9,.0f} {r['us_per_row']:>7.1f}"
              f" {r['peak_rss_mib']:>6.0f} MiB")
    reference = results[len(results) // 2] if len(results) > 2 else results[0]
    for r in results:
        if r["size"] > reference["size"]:
            print(f"cost per row at {r['size']:,} / at {reference['size']:,}: "
                  f"{r['us_per_row'] / reference['us_per_row']:.2f} (goal: <= 1.2)")
    print(f"peak RSS at {results[-1]['size']:,}: {results[-1]['peak_rss_mib']:.0f} MiB "
          f"(goal < 1024 MiB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000,3000000")
    parser.add_argument("--no-gx", action="store_true")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, not args.no_gx)))
        return
    sizes = sorted(int(size) for size in args.sizes.split(","))
    results = []
    for size in sizes:
        results.append(measure(size, not args.no_gx))
        print(f"... {size:,} time entries: {results[-1]['wall']:.0f} s", flush=True)
    print(f"GX {'off' if args.no_gx else 'on'}; one process per size")
    report(results)


if __name__ == "__main__":
    main()
