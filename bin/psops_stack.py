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
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN_AIRFLOW = REPO_ROOT / "bin" / "airflow"
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
DEFAULT_PORT = 8080
START_TIMEOUT_S = float(os.environ.get("PSOPS_STACK_START_TIMEOUT_SECONDS", 240))
STOP_TIMEOUT_S = 30
# Users of the local stack's simple auth manager: name -> Airflow role. `finance` is the
# default finance user (PSOPS_FINANCE_USERS) who sees the finance pages and approves
# (answering an approval needs the role `user` or above).
USERS = {"admin": "admin", "finance": "user", "engineer": "user"}


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


def read_env_file() -> dict[str, str]:
    path = state_dir() / "env"
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export "):].partition("=")
                values[key] = shlex.split(value)[0] if value else ""
    return values


def _metadata_url() -> str:
    result = subprocess.run(
        [str(VENV_PYTHON), "-m", "psops.warehouse", "metadata-url"],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins")},
        capture_output=True, text=True, timeout=120,
    )
    if result.returncode != 0:
        raise StackError(f"no metadata database: {result.stderr.strip()}")
    return result.stdout.strip().splitlines()[-1]


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
    passwords = state_dir() / "passwords.json"
    if not passwords.exists():
        passwords.write_text(json.dumps({user: secrets.token_urlsafe(12) for user in USERS}))
        passwords.chmod(0o600)
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
            f"{user}:{role}" for user, role in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
    }
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
    env_file = state_dir() / "env"
    env_file.write_text("\n".join(lines) + "\n")
    env_file.chmod(0o600)
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


def running_pid(name: str) -> int | None:
    path = pid_file(name)
    if not path.exists():
        return None
    pid = int(path.read_text().strip())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        return None
    return pid


def start_process(name: str, argv: list[str], env: dict[str, str]) -> int:
    """Start a process in a session of its own (so `down` stops all its children)."""
    pid_file(name).parent.mkdir(parents=True, exist_ok=True)
    log_file(name).parent.mkdir(parents=True, exist_ok=True)
    with open(log_file(name), "ab") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=REPO_ROOT,
                                   start_new_session=True)
    pid_file(name).write_text(str(process.pid))
    return process.pid


def stop_process(name: str) -> bool:
    pid = running_pid(name)
    if pid is None:
        pid_file(name).unlink(missing_ok=True)
        return False
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 10)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _group_alive(pid):
            time.sleep(0.3)
        if not _group_alive(pid):
            break
    pid_file(name).unlink(missing_ok=True)
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # A zombie leader of our own child counts as gone.
    try:
        os.waitpid(pgid, os.WNOHANG)
    except ChildProcessError:
        pass
    return _group_has_live_members(pgid)


def _group_has_live_members(pgid: int) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


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


class AirflowApi:
    """A small client of Airflow's REST API (/api/v2) logged in as one stack user."""

    def __init__(self, url: str, username: str, password: str):
        self.url = url.rstrip("/")
        self.username = username
        response = self._send("POST", "/auth/token",
                              {"username": username, "password": password}, token=None)
        self.token = response["access_token"]

    @classmethod
    def for_user(cls, username: str = "admin") -> AirflowApi:
        return cls(api_url(), username, passwords()[username])

    def get(self, path: str, **query) -> dict:
        from urllib.parse import urlencode

        suffix = f"?{urlencode(query, doseq=True)}" if query else ""
        return self._send("GET", f"/api/v2{path}{suffix}")

    def post(self, path: str, body: dict) -> dict:
        return self._send("POST", f"/api/v2{path}", body)

    def patch(self, path: str, body: dict) -> dict:
        return self._send("PATCH", f"/api/v2{path}", body)

    def _send(self, method: str, path: str, body: dict | None = None,
              token: str | None | bool = True) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
        except urllib.error.HTTPError as err:
            raise ApiError(err.code, f"{method} {path}: HTTP {err.code}: "
                                     f"{err.read()[:500].decode(errors='replace')}") from None
        return json.loads(text) if text else {}


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------


def _airflow(args: list[str], env: dict[str, str], timeout: int = 300
             ) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN_AIRFLOW), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=REPO_ROOT)


def up() -> dict[str, str]:
    if running_pid("api-server") and read_env_file():
        settings = read_env_file()
        if not unhealthy_parts(health(api_url(settings))):
            say(f"the stack is already up at {api_url(settings)}")
            return settings
        raise StackError("the stack is partly up; run `bin/stack down` first "
                         f"(logs in {state_dir() / 'logs'})")
    stop_all(quiet=True)
    started_warehouse = _start_warehouse()
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
    if started_warehouse:
        (state_dir() / "started-warehouse").touch()
    wait_until_healthy(settings, [p.name for p in parts])
    print_status(settings)
    return settings


def _start_warehouse() -> bool:
    if os.environ.get("AIRFLOW_CONN_WAREHOUSE"):
        return False
    result = subprocess.run(
        [str(VENV_PYTHON), "-m", "psops.warehouse", "start"],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins")},
        capture_output=True, text=True, timeout=120,
    )
    if result.returncode != 0:
        raise StackError(result.stderr.strip())
    return "started" in result.stdout and "already" not in result.stdout


def _check_pool(env: dict[str, str]) -> None:
    """bin/airflow migrates the metadata database and creates the pools on first use."""
    sys.path.insert(0, str(REPO_ROOT / "plugins"))
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


def down() -> None:
    stop_all()
    marker = state_dir() / "started-warehouse"
    if marker.exists():
        subprocess.run([str(VENV_PYTHON), "-m", "psops.warehouse", "stop"],
                       env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins")},
                       timeout=120, check=False)
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
