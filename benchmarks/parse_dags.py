"""Parse cost of dags/: each file and the whole folder, in one warm process.

The process imports `airflow.sdk` and Airflow's DAG-file processor first (a
parser process has them loaded before it reads any DAG file), then executes each DAG file in sorted order, the way
the dag-processor would. Prints one line per file and the folder total, and
the ratio of the folder total to the 0.5 s goal.

    .venv/bin/python benchmarks/parse_dags.py [--json]
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DAGS_DIR = REPO_ROOT / "dags"
GOAL_S = 0.5


def parse_file(path: Path) -> tuple[float, int]:
    """Seconds to execute the file as a fresh module, and how many DAGs it defined."""
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    name = f"psops_parse_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    DagContext.current_autoregister_module_name = name
    started = time.perf_counter()
    spec.loader.exec_module(module)
    elapsed = time.perf_counter() - started
    DagContext.current_autoregister_module_name = None
    dags = [dag for dag, mod in DagContext.autoregistered_dags if mod is module]
    return elapsed, len(dags)


def main() -> int:
    for path in (REPO_ROOT / "plugins",):
        sys.path.insert(0, str(path))
    started = time.perf_counter()
    # The warm-up every parser process has paid before the first DAG file: the
    # Task SDK and Airflow's own DAG-file processor (which imports airflow.models).
    import airflow.dag_processing.processor  # noqa: F401
    from airflow.sdk import Asset, dag, task  # noqa: F401

    warmup = time.perf_counter() - started
    files = sorted(DAGS_DIR.glob("*.py"))
    timings = {}
    for path in files:
        timings[path.name] = parse_file(path)
    total = sum(seconds for seconds, _ in timings.values())
    if "--json" in sys.argv:
        print(json.dumps({"warmup_s": warmup, "total_s": total,
                          "files": {name: seconds for name, (seconds, _) in timings.items()}}))
        return 0
    print(f"warm-up: airflow.sdk + DAG processor (excluded): {warmup:.3f} s")
    for name, (seconds, dag_count) in timings.items():
        print(f"{name:40s} {seconds * 1000:8.1f} ms  ({dag_count} DAG{'s' if dag_count != 1 else ''})")
    print(f"{'dags/ total':40s} {total * 1000:8.1f} ms  = {total / GOAL_S:.2f} x the {GOAL_S} s goal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
