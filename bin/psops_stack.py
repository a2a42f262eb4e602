"""The local psops stack: Airflow's api-server, scheduler, dag-processor, triggerer and,
with a Redis broker, a Celery worker, as separate processes on this machine.

    bin/stack up        start what is not running, wait until healthy, print URLs and logins
    bin/stack down      stop every process the stack started (and the embedded warehouse
                        when the stack started it)
    bin/stack status    what runs, where the logs are

Metadata lives in PostgreSQL (a database of its own, PSOPS_METADATA_DB, on the
warehouse's server: the embedded one by default), never SQLite. The executor is the
CeleryExecutor when PSOPS_CELERY_BROKER names a broker (e.g. redis://127.0.0.1:6379/0),
else the LocalExecutor. State lives in $AIRFLOW_HOME/stack/: `env` (the settings every
process of this home shares; bin/airflow reads it too), `passwords.json`, `pids/`,
`logs/`. Used by `make up|down|demo`, the demo driver and the `stack` tests.

Here: the warehouse commands, health and the commands. The configuration (settings,
the processes' environment, components) is bin/psops_stack_config.py, the processes
(pid files, logs, stop by process group) bin/psops_stack_processes.py, the REST client
bin/psops_rest.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
from psops_rest import AirflowApi  # noqa: E402
from psops_stack_config import (  # noqa: E402
    BIN_AIRFLOW,
    REPO_ROOT,
    VENV_PYTHON,
    StackError,
    airflow_home,
    components,
    python_env,
    read_env_file,
    say,
    stack_environment,
    state_dir,
    write_settings,
)
from psops_stack_processes import (  # noqa: E402
    all_component_names,
    log_file,
    log_tail,
    running_pid,
    start_process,
    stop_process,
)

from psops.settings import STACK_START_TIMEOUT_SECONDS  # noqa: E402

# --------------------------------------------------------------------------
# The warehouse
# --------------------------------------------------------------------------


def run_warehouse_command(command: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([str(VENV_PYTHON), str(REPO_ROOT / "bin" / "psops_warehouse.py"),
                             command],
                            env=python_env(env), capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise StackError(result.stderr.strip() or f"psops_warehouse.py {command} failed")
    return result.stdout.strip()


def _metadata_url() -> str:
    """AIRFLOW__DATABASE__SQL_ALCHEMY_CONN when the caller set one (PostgreSQL only), else
    a database of its own on the warehouse's server (psops_warehouse.py metadata-url)."""
    configured = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if configured.startswith("sqlite"):
        raise StackError("the stack keeps Airflow's metadata in PostgreSQL; unset "
                         "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN or point it at a PostgreSQL")
    return configured or run_warehouse_command("metadata-url").splitlines()[-1]


# --------------------------------------------------------------------------
# Health
# --------------------------------------------------------------------------


def api_url(settings: dict[str, str] | None = None) -> str:
    settings = settings or read_env_file()
    return settings["AIRFLOW__API__BASE_URL"]


def health(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=3) as response:
            return json.load(response)
    except (OSError, ValueError):
        return None


def unhealthy_parts(report: dict | None) -> list[str]:
    if report is None:
        return ["api-server"]
    return sorted(part for part, value in report.items()
                  if isinstance(value, dict) and value.get("status") != "healthy")


def celery_worker_ready() -> bool:
    path = log_file("celery-worker")
    return path.exists() and " ready." in path.read_text(errors="replace")


def wait_until_healthy(settings: dict[str, str], names: list[str]) -> None:
    timeout_s = STACK_START_TIMEOUT_SECONDS.number()
    deadline = time.monotonic() + timeout_s
    url = api_url(settings)
    waiting: list[str] = []
    while time.monotonic() < deadline:
        for name in names:
            if running_pid(name) is None:
                raise StackError(f"{name} exited while starting; last lines of "
                                 f"{log_file(name)}:\n{log_tail(name)}")
        waiting = unhealthy_parts(health(url))
        if "celery-worker" in names and not celery_worker_ready():
            waiting.append("celery-worker")
        if not waiting:
            return
        time.sleep(1)
    raise StackError(f"not healthy after {timeout_s:.0f} s: {', '.join(waiting)}; "
                     f"logs in {state_dir() / 'logs'}")


# --------------------------------------------------------------------------
# The REST API, as a user of the stack reaches it
# --------------------------------------------------------------------------


def api_for(username: str = "admin") -> AirflowApi:
    """A REST client of the running stack, logged in as one of its users."""
    return AirflowApi(api_url(), username, passwords()[username])


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------


def _airflow(args: list[str], env: dict[str, str], timeout: int = 300
             ) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN_AIRFLOW), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=REPO_ROOT)


def up() -> dict[str, str]:
    settings = read_env_file()
    alive = {name: running_pid(name) for name in all_component_names()}
    if settings and alive:
        dead = sorted(name for name, pgid in alive.items() if pgid is None)
        bad = dead + unhealthy_parts(health(api_url(settings)))
        if not bad:
            say(f"the stack is already up at {api_url(settings)}")
            return settings
        raise StackError(f"the stack is partly up (not running or not healthy: "
                         f"{', '.join(bad)}); run `bin/stack down` first "
                         f"(logs in {state_dir() / 'logs'})")
    state_dir().mkdir(parents=True, exist_ok=True)
    if _start_warehouse():
        (state_dir() / "started-warehouse").touch()
    try:
        return _start_components()
    except (StackError, subprocess.TimeoutExpired):
        say("start failed; stopping what was started")
        down(quiet=True)
        raise


def _start_components() -> dict[str, str]:
    print(run_warehouse_command("migrate"), flush=True)
    settings = write_settings(_metadata_url())
    env = stack_environment()
    say(f"metadata database: {_redact(settings['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN'])}")
    say("preparing the Airflow metadata database (the first start migrates it: about a minute)")
    _prepare_metadata_database(env)
    parts = components(settings)
    executor = settings["AIRFLOW__CORE__EXECUTOR"]
    broker = settings.get("AIRFLOW__CELERY__BROKER_URL")
    say(f"starting {', '.join(p.name for p in parts)} ({executor}"
        f"{f', broker {_redact(broker)}' if broker else ''})")
    for part in parts:
        start_process(part.name, [str(BIN_AIRFLOW), *part.argv], env)
    wait_until_healthy(settings, [p.name for p in parts])
    print_status(settings)
    return settings


def _start_warehouse() -> bool:
    """Start the embedded warehouse unless one is configured; whether this call did."""
    if os.environ.get("AIRFLOW_CONN_WAREHOUSE"):
        return False
    output = run_warehouse_command("start")
    return "started" in output and "already" not in output


def _prepare_metadata_database(env: dict[str, str]) -> None:
    """The first bin/airflow call of a metadata database migrates it and creates the
    pools: made here, once, before the components start (they would race to migrate it);
    then every pool of the catalogue must be there."""
    from psops.catalogue import request_pools

    _airflow_or_fail(["pools", "list"], env, "the metadata database is not ready")
    for pool in request_pools():
        _airflow_or_fail(["pools", "get", pool], env,
                         f"the metadata database is not ready (pool {pool})")


def _airflow_or_fail(args: list[str], env: dict[str, str], problem: str) -> None:
    result = _airflow(args, env, timeout=600)
    if result.returncode != 0:
        raise StackError(f"{problem}:\n{result.stderr[-2000:]}")


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def stop_all(quiet: bool = False) -> list[str]:
    stopped = [name for name in all_component_names() if stop_process(name)]
    if not quiet:
        say(f"stopped {', '.join(stopped)}" if stopped else "nothing of the stack was running")
    return stopped


def down(quiet: bool = False) -> None:
    stop_all(quiet=quiet)
    marker = state_dir() / "started-warehouse"
    if marker.exists():
        print(run_warehouse_command("stop"), flush=True)
        marker.unlink()


def passwords() -> dict[str, str]:
    path = state_dir() / "passwords.json"
    return json.loads(path.read_text()) if path.exists() else {}


def print_status(settings: dict[str, str] | None = None) -> None:
    settings = settings or read_env_file()
    if not settings or running_pid("api-server") is None:
        say("the stack is down (`make up` starts it)")
        return
    url = api_url(settings)
    report = health(url)
    logins = passwords()
    rows = []
    for name in all_component_names():
        pid = running_pid(name)
        rows.append(f"    {name:<14} {'pid ' + str(pid) if pid else 'NOT RUNNING':<12} "
                    f"{log_file(name)}")
    bad = unhealthy_parts(report)
    print(f"""
  psops stack: {'healthy' if not bad else 'NOT healthy: ' + ', '.join(bad)}
    executor        {settings['AIRFLOW__CORE__EXECUTOR']}
    Airflow UI      {url}/
    Finance pages   {url}/psops/billing
    REST API        {url}/api/v2  (token: POST {url}/auth/token)
    Logins          {', '.join(f'{u} / {p}' for u, p in logins.items())}
                    (finance sees the finance pages and approves corrections)
{chr(10).join(rows)}
    Task logs       {airflow_home() / 'logs'}
    Stop it with    make down
""", flush=True)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    try:
        if command == "up":
            up()
        elif command == "down":
            down()
        elif command == "status":
            print_status()
        else:
            print("usage: bin/stack up|down|status", file=sys.stderr)
            return 2
    except StackError as err:
        print(f"psops: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
