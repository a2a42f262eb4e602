"""`make demo`: the psops pipeline under the scheduler of the local stack.

1. the stack (bin/stack up) when it is not up, and the warehouse migrated;
2. the source sandbox (CRM, PSA, ERP, HRIS, alert webhook) with today as its "today",
   as a process of the stack, and the Airflow connections pointed at it (REST API);
3. the DAGs unpaused: the scheduler starts today's ingest runs (or, when today's ran
   already, the demo triggers new ones), each ingest updates its raw Asset, the four
   Asset events start psops_transform, its marts Asset starts psops_writeback, which
   hands large corrections to a psops_approve_corrections run that waits for finance;
4. progress while it waits, then the summary from the marts and of the write-back.

The stack stays up afterwards with the UI and real task logs; `make down` stops it.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
import psops_stack as stack  # noqa: E402
from psops_rest import AirflowApi, ApiError  # noqa: E402
from psops_stack_config import REPO_ROOT, VENV_PYTHON, StackError, stack_environment  # noqa: E402
from psops_stack_processes import log_file, running_pid, start_process, stop_process  # noqa: E402

from psops.catalogue import system_names  # noqa: E402
from psops.settings import DEMO_TIMEOUT_SECONDS  # noqa: E402

INGEST_DAGS = [f"psops_ingest_{system}" for system in system_names()]
ASSET_DAGS = ["psops_transform", "psops_writeback", "psops_approve_corrections"]
FINAL_STATES = {"success", "failed"}


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def print_summary(as_of: str) -> None:
    """bin/psops_demo_summary.py with the stack's environment and its warehouse
    connection (the embedded warehouse's, when AIRFLOW_CONN_WAREHOUSE is not set)."""
    env = stack_environment()
    if not env.get("AIRFLOW_CONN_WAREHOUSE"):
        export_line = stack.run_warehouse_command("env", env)
        env["AIRFLOW_CONN_WAREHOUSE"] = shlex.split(export_line.partition("=")[2])[0]
    subprocess.run([str(VENV_PYTHON), str(REPO_ROOT / "bin" / "psops_demo_summary.py"),
                    as_of], env=env, check=True, cwd=REPO_ROOT)


# --------------------------------------------------------------------------
# Sandbox and connections
# --------------------------------------------------------------------------


def sandbox_environment() -> dict[str, str]:
    """The sandbox process's environment: the repository root (where the `sandbox`
    package is) as its whole PYTHONPATH. Only this process gets it: the product's
    processes have plugins/ alone (psops_stack_config.stack_environment)."""
    return {**stack_environment(), "PYTHONPATH": str(REPO_ROOT)}


def start_sandbox(as_of: str) -> dict[str, str]:
    """The sandbox as a stack process (restarted fresh); its AIRFLOW_CONN_* values."""
    stop_process("sandbox")
    log_file("sandbox").unlink(missing_ok=True)
    start_process("sandbox", [str(VENV_PYTHON), "-m", "sandbox", "--base-port", "0",
                              "--today", as_of], sandbox_environment())
    deadline = time.monotonic() + 120
    log = log_file("sandbox")
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "export AIRFLOW_CONN_ALERTS_WEBHOOK" in text:
            for line in text.splitlines():
                if line.startswith("  ") and line.split()[0] in {"crm", "psa", "erp", "hris",
                                                                 "webhook"}:
                    print(line)
            return dict(_connection_export(line) for line in text.splitlines()
                        if line.startswith("export AIRFLOW_CONN_"))
        if running_pid("sandbox") is None:
            break
        time.sleep(0.5)
    raise StackError(f"the sandbox did not start; see {log}")


def _connection_export(line: str) -> tuple[str, str]:
    name, _, value = line[len("export AIRFLOW_CONN_"):].partition("=")
    return name.lower(), shlex.split(value)[0]


def register_connections(api: AirflowApi, connections: dict[str, str]) -> None:
    """Create or update each connection in the metadata database (the workers read it)."""
    import json

    for conn_id, value in connections.items():
        fields = json.loads(value)
        body = {"connection_id": conn_id, "conn_type": fields["conn_type"]}
        for key in ("host", "port", "schema", "login", "password"):
            if fields.get(key) is not None:
                body[key] = fields[key]
        if fields.get("extra"):
            body["extra"] = json.dumps(fields["extra"])
        try:
            api.patch(f"/connections/{conn_id}", body)
        except ApiError as err:
            if err.status != 404:
                raise
            api.post("/connections", body)
    print(f"  connections {', '.join(sorted(connections))} point at the sandbox")


# --------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------


def wait_for_dags(api: AirflowApi, dag_ids: list[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    missing = dag_ids
    while time.monotonic() < deadline:
        known = {dag["dag_id"] for dag in api.get("/dags", limit=100)["dags"]}
        missing = [dag_id for dag_id in dag_ids if dag_id not in known]
        if not missing:
            return
        time.sleep(2)
    raise StackError(f"the dag-processor has not parsed {', '.join(missing)} after "
                     f"{timeout:.0f} s; see {log_file('dag-processor')}")


def start_ingests(api: AirflowApi, as_of: str) -> None:
    """Unpause the ingest DAGs: the scheduler starts the run of `as_of` (logical date
    00:00 UTC); when that run exists already (an earlier demo today), trigger a new one."""
    midnight = f"{as_of}T00:00:00Z"
    scheduled = {dag_id: api.get(f"/dags/{dag_id}/dagRuns", logical_date_gte=midnight,
                                 logical_date_lte=midnight)["total_entries"] > 0
                 for dag_id in INGEST_DAGS}
    for dag_id in INGEST_DAGS:
        api.patch(f"/dags/{dag_id}", {"is_paused": False})
        if scheduled[dag_id]:
            api.post(f"/dags/{dag_id}/dagRuns", {"logical_date": None,
                                                 "note": "make demo: ingest again"})
            print(f"  {dag_id}: today's scheduled run exists already; triggered a new run")


class Progress:
    """Prints each run's state and the task running now, when they change."""

    def __init__(self, api: AirflowApi, since: str):
        self.api = api
        self.since = since
        self.shown: dict[str, str] = {}

    def runs(self) -> list[dict]:
        found = []
        for dag_id in INGEST_DAGS + ASSET_DAGS:
            found += self.api.get(f"/dags/{dag_id}/dagRuns", start_date_gte=self.since,
                                  limit=50)["dag_runs"]
        return found

    def show(self, runs: list[dict]) -> None:
        for run in runs:
            key = f"{run['dag_id']}/{run['dag_run_id']}"
            line = f"{run['state']}"
            if run["state"] not in FINAL_STATES:
                line += self._tasks(run)
            if self.shown.get(key) != line:
                self.shown[key] = line
                print(f"  [{time.strftime('%H:%M:%S')}] {run['dag_id']:<26} "
                      f"{run['run_type']:<15} {line}", flush=True)

    def _tasks(self, run: dict) -> str:
        tis = self.api.get(f"/dags/{run['dag_id']}/dagRuns/{run['dag_run_id']}"
                           "/taskInstances")["task_instances"]
        done = sum(ti["state"] in {"success", "skipped"} for ti in tis)
        now = [ti["task_id"] for ti in tis if ti["state"] in {"running", "deferred",
                                                              "awaiting_input"}]
        return f" ({done}/{len(tis)} tasks done{'; now: ' + ', '.join(now) if now else ''})"


def wait_for_pipeline(api: AirflowApi, since: str) -> list[dict]:
    """Until the ingests, an Asset-triggered transform and write-back have finished."""
    progress = Progress(api, since)
    timeout_s = DEMO_TIMEOUT_SECONDS.number()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = progress.runs()
        progress.show(runs)
        failed = [run for run in runs if run["state"] == "failed"]
        if failed:
            raise StackError(
                "failed: " + ", ".join(f"{run['dag_id']} {run['dag_run_id']}" for run in failed)
                + f"; open {stack.api_url()}/dags/{failed[0]['dag_id']} for the task logs")
        if _pipeline_done(runs):
            return runs
        time.sleep(3)
    raise StackError(f"the pipeline did not finish within {timeout_s:.0f} s")


def transform_as_of(runs: list[dict]) -> str:
    """The as-of date of the Asset-triggered transform the demo waited for (its run_after
    date, UTC): right even when the demo crossed midnight."""
    run = max((r for r in runs if r["dag_id"] == "psops_transform"
               and r["run_type"] == "asset_triggered" and r["state"] == "success"),
              key=lambda r: r["run_after"])
    return run["run_after"][:10]


def _pipeline_done(runs: list[dict]) -> bool:
    def succeeded(dag_id: str, run_type: str | None = None) -> bool:
        return any(run["dag_id"] == dag_id and run["state"] == "success"
                   and (run_type is None or run["run_type"] == run_type) for run in runs)

    return (all(succeeded(dag_id) for dag_id in INGEST_DAGS)
            and succeeded("psops_transform", "asset_triggered")
            and succeeded("psops_writeback", "asset_triggered"))


# --------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------


def main() -> int:
    started = time.monotonic()
    as_of = datetime.now(UTC).date().isoformat()
    try:
        step("The local stack (warehouse, api-server, scheduler, dag-processor, triggerer)")
        stack.up()
        step(f"Sandbox: the four source systems and the alert webhook, 'today' = {as_of}")
        connections = start_sandbox(as_of)
        api = stack.api_for("admin")
        register_connections(api, connections)
        step("The scheduler runs the pipeline: ingest -> (Asset events) -> transform -> "
             "write-back")
        wait_for_dags(api, INGEST_DAGS + ASSET_DAGS)
        since = datetime.now(UTC).isoformat()
        for dag_id in ASSET_DAGS:
            api.patch(f"/dags/{dag_id}", {"is_paused": False})
        start_ingests(api, as_of)
        as_of = transform_as_of(wait_for_pipeline(api, since))
        step("Summary")
        print_summary(as_of)
    except (StackError, ApiError, subprocess.CalledProcessError) as err:
        print(f"psops: error: {err}", file=sys.stderr)
        return 1
    step(f"Done in {time.monotonic() - started:.0f} s; the stack stays up")
    stack.print_status()
    url = stack.api_url()
    print(f"""  Where to look next
    - The runs and their task logs:   {url}/dags
    - The Asset graph:                {url}/assets
    - Held corrections for finance:   {url}/required_actions  (log in as finance)
    - Finance pages:                  {url}/psops/billing
    - Marts for analysts (role psops_analyst): marts.billing_readiness, ...; ops.exceptions
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
