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

One module on purpose (about 500 lines): settings, processes, health and the commands
share the state directory's layout, and `bin/stack` runs it without installing anything.
The REST client is bin/psops_rest.py.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from psops_rest import AirflowApi

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN_AIRFLOW = REPO_ROOT / "bin" / "airflow"
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
DEFAULT_PORT = 8080
START_TIMEOUT_S = float(os.environ.get("PSOPS_STACK_START_TIMEOUT_SECONDS", 240))
STOP_TIMEOUT_S = 30
sys.path.insert(0, str(REPO_ROOT / "plugins"))


def stack_users() -> dict[str, str]:
    """Logins of the stack's simple auth manager: name -> Airflow role. The finance users
    (PSOPS_FINANCE_USERS, default `finance`) see the finance pages and answer approvals,
    which needs the role `user` or above; `engineer` runs DAGs but is not finance."""
    from psops.finance_access import finance_users

    return {"admin": "admin", **dict.fromkeys(finance_users(), "user"), "engineer": "user"}


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or REPO_ROOT / ".airflow")


def state_dir() -> Path:
    return airflow_home() / "stack"


def say(message: str) -> None:
    print(f"psops: {message}", flush=True)


class StackError(RuntimeError):
    """A stack problem with one line that says what to do."""


# --------------------------------------------------------------------------
# Settings shared by every process of the stack
# --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def read_env_file(path: Path | None = None) -> dict[str, str]:
    """The settings of stack/env (or of `path`)."""
    path = path or state_dir() / "env"
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export "):].partition("=")
                values[key] = shlex.split(value)[0] if value else ""
    return values


def python_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """An environment in which `python -m psops...` and `-m sandbox` import."""
    return {**(env or os.environ),
            "PYTHONPATH": f"{REPO_ROOT / 'plugins'}:{REPO_ROOT / 'include'}"}


def run_warehouse_command(command: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([str(VENV_PYTHON), "-m", "psops.warehouse", command],
                            env=python_env(env), capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise StackError(result.stderr.strip() or f"psops.warehouse {command} failed")
    return result.stdout.strip()


def _metadata_url() -> str:
    """AIRFLOW__DATABASE__SQL_ALCHEMY_CONN when the caller set one (PostgreSQL only), else
    a database of its own on the warehouse's server (psops.warehouse metadata-url)."""
    configured = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if configured.startswith("sqlite"):
        raise StackError("the stack keeps Airflow's metadata in PostgreSQL; unset "
                         "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN or point it at a PostgreSQL")
    return configured or run_warehouse_command("metadata-url").splitlines()[-1]


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _api_port() -> int:
    wanted = int(os.environ.get("PSOPS_STACK_PORT", DEFAULT_PORT))
    if wanted == 0:
        return free_port()
    if port_taken(wanted):
        raise StackError(f"port {wanted} is already in use; set PSOPS_STACK_PORT to a free "
                         "port (0 = any free port)")
    return wanted


def write_settings() -> dict[str, str]:
    """Choose the stack's settings (once per start) and write them to stack/env."""
    state_dir().mkdir(parents=True, exist_ok=True)
    previous = read_env_file()
    port = _api_port()
    api_url = f"http://127.0.0.1:{port}"
    users = stack_users()
    passwords = state_dir() / "passwords.json"
    known = json.loads(passwords.read_text()) if passwords.exists() else {}
    _write_private(passwords, json.dumps(
        {user: known.get(user) or secrets.token_urlsafe(12) for user in users}))
    broker = os.environ.get("PSOPS_CELERY_BROKER", "")
    settings = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _metadata_url(),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if broker else "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": os.environ.get("AIRFLOW__CORE__PARALLELISM", "4"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
        "AIRFLOW__API__BASE_URL": api_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": previous.get("AIRFLOW__API_AUTH__JWT_SECRET")
        or secrets.token_urlsafe(32),
        "AIRFLOW__CORE__FERNET_KEY": previous.get("AIRFLOW__CORE__FERNET_KEY") or _fernet_key(),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
            f"{user}:{role}" for user, role in users.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
    }
    if os.environ.get("AIRFLOW_CONN_WAREHOUSE"):
        # Every process of the stack, and every later command on it, uses this warehouse.
        settings["AIRFLOW_CONN_WAREHOUSE"] = os.environ["AIRFLOW_CONN_WAREHOUSE"]
    if broker:
        queue = os.environ.get("PSOPS_CELERY_QUEUE", "psops")
        settings.update({
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
            "PSOPS_CELERY_QUEUE": queue,
        })
    lines = ["# Written by bin/stack up: the settings every process of this Airflow home shares.",
             "# bin/airflow reads it, so CLI commands talk to the same metadata database."]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in settings.items()]
    _write_private(state_dir() / "env", "\n".join(lines) + "\n")
    return settings


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def stack_environment() -> dict[str, str]:
    return {**os.environ, **read_env_file(), "AIRFLOW_HOME": str(airflow_home())}


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    name: str
    argv: tuple[str, ...]


def components(settings: dict[str, str]) -> list[Component]:
    parts = [
        Component("api-server", ("api-server", "--host", "127.0.0.1",
                                 "--port", settings["AIRFLOW__API__PORT"], "--workers", "1")),
        Component("scheduler", ("scheduler",)),
        Component("dag-processor", ("dag-processor",)),
        Component("triggerer", ("triggerer",)),
    ]
    if settings["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor":
        concurrency = os.environ.get("PSOPS_CELERY_CONCURRENCY", "4")
        parts.append(Component("celery-worker", (
            "celery", "worker", "--queues", settings["PSOPS_CELERY_QUEUE"],
            "--concurrency", concurrency)))
    return parts


def pid_file(name: str) -> Path:
    return state_dir() / "pids" / f"{name}.pid"


def log_file(name: str) -> Path:
    return state_dir() / "logs" / f"{name}.log"


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: [state, ppid, pgrp, ..., starttime (19)]."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_members(pgid: int, started: str) -> list[int]:
    """Live processes of the process group a component was started as. A group is ours
    while its leader is the process we started (same start time) or, once the leader
    has died, while processes of its group live on (Linux reuses no pid that is still a
    process group's id): so a stale pid file never leads to a stranger."""
    leader = _stat_fields(pgid)
    if leader is not None and leader[0] != "Z" and leader[19] != started:
        return []
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat_fields(int(stat.parent.name))
        if fields and fields[0] != "Z" and fields[2] == str(pgid):
            members.append(int(stat.parent.name))
    return members


def _read_pid_file(name: str) -> tuple[int, str] | None:
    try:
        pgid, started = pid_file(name).read_text().split()
        return int(pgid), started
    except (OSError, ValueError):
        return None


def running_pid(name: str) -> int | None:
    """The process group of a component while any process of it lives (the leader may
    have died with its children still running); forgets a dead one."""
    recorded = _read_pid_file(name)
    if recorded is not None:
        pgid, started = recorded
        try:  # our own child that exited: reap it
            os.waitpid(pgid, os.WNOHANG)
        except ChildProcessError:
            pass
        if group_members(pgid, started):
            return pgid
    pid_file(name).unlink(missing_ok=True)
    return None


def start_process(name: str, argv: list[str], env: dict[str, str]) -> int:
    """Start a process in a session of its own (so `down` stops all its children); the
    previous log is kept as <name>.log.1."""
    pid_file(name).parent.mkdir(parents=True, exist_ok=True)
    log = log_file(name)
    log.parent.mkdir(parents=True, exist_ok=True)
    if log.exists():
        log.replace(log.with_suffix(".log.1"))
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=REPO_ROOT,
                                   start_new_session=True)
    started = (_stat_fields(process.pid) or [""] * 20)[19]
    pid_file(name).write_text(f"{process.pid} {started}")
    return process.pid


def stop_process(name: str) -> bool:
    """TERM every process of the component's group, KILL what is left after 30 s."""
    pgid = running_pid(name)
    recorded = _read_pid_file(name)
    if pgid is None or recorded is None:
        return False
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 10)):
        for pid in group_members(*recorded):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and running_pid(name) is not None:
            time.sleep(0.3)
        if running_pid(name) is None:
            break
    pid_file(name).unlink(missing_ok=True)
    return True


def all_component_names() -> list[str]:
    names = [path.stem for path in (state_dir() / "pids").glob("*.pid")]
    return sorted(names)


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
    deadline = time.monotonic() + START_TIMEOUT_S
    url = api_url(settings)
    waiting: list[str] = []
    while time.monotonic() < deadline:
        for name in names:
            if running_pid(name) is None:
                raise StackError(f"{name} exited while starting; last lines of "
                                 f"{log_file(name)}:\n{_tail(log_file(name))}")
        waiting = unhealthy_parts(health(url))
        if "celery-worker" in names and not celery_worker_ready():
            waiting.append("celery-worker")
        if not waiting:
            return
        time.sleep(1)
    raise StackError(f"not healthy after {START_TIMEOUT_S:.0f} s: {', '.join(waiting)}; "
                     f"logs in {state_dir() / 'logs'}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


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
    settings = write_settings()
    env = stack_environment()
    say(f"metadata database: {_redact(settings['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN'])}")
    say("preparing the Airflow metadata database (the first start migrates it: about a minute)")
    _check_pool(env)
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


def _check_pool(env: dict[str, str]) -> None:
    """bin/airflow migrates the metadata database and creates the pools on first use."""
    from psops.dag_defaults import ERP_POOL

    result = _airflow(["pools", "get", ERP_POOL], env, timeout=600)
    if result.returncode != 0:
        raise StackError(f"the metadata database is not ready (pool {ERP_POOL}):\n"
                         f"{result.stderr[-2000:]}")


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
