"""What the benchmarks share: a sandbox in its own process and a throwaway warehouse DB."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for folder in (REPO_ROOT / "plugins", REPO_ROOT):  # psops, and tests.warehouse_fixtures
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="psops_bench_airflow_"))

from tests.warehouse_fixtures import scratch_database  # noqa: E402


@contextlib.contextmanager
def sandbox_process(*args: str):
    """`python -m sandbox` in its own process (so it does not share our GIL); yields its
    AIRFLOW_CONN_* variables and control URL, already exported into os.environ."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    log = tempfile.NamedTemporaryFile("w+", prefix="psops_bench_sandbox_", suffix=".log")
    process = subprocess.Popen([sys.executable, "-m", "sandbox", "--base-port", "0",
                                "--no-natural-limits", *args], stdout=log,
                               stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 300
        while True:
            text = Path(log.name).read_text()
            if "export AIRFLOW_CONN_ALERTS_WEBHOOK" in text:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox did not start:\n{text}")
            time.sleep(0.2)
        conn_env = dict(re.findall(r"^export (AIRFLOW_CONN_\w+)='(.*)'$", text, re.M))
        os.environ.update(conn_env)
        psa_url = re.search(r"^\s+psa\s+(\S+)", text, re.M).group(1)
        yield {"conn_env": conn_env, "psa_url": psa_url}
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@contextlib.contextmanager
def bench_database():
    """A migrated database of its own on the configured server, dropped afterwards; the
    Airflow connection `warehouse` (what the step functions open) meanwhile."""
    with scratch_database("psops_bench") as target:
        saved = os.environ.get("AIRFLOW_CONN_WAREHOUSE")
        os.environ["AIRFLOW_CONN_WAREHOUSE"] = target.airflow_uri()
        try:
            yield target
        finally:
            if saved is None:
                os.environ.pop("AIRFLOW_CONN_WAREHOUSE", None)
            else:
                os.environ["AIRFLOW_CONN_WAREHOUSE"] = saved


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started
