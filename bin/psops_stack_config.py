"""The local stack's configuration: where its state lives, the settings every process of an
Airflow home shares ($AIRFLOW_HOME/stack/env), the processes' environment and the
components to start. Processes are in psops_stack_processes.py, the commands in
psops_stack.py.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN_AIRFLOW = REPO_ROOT / "bin" / "airflow"
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
# The product's code: what every process of the stack has on its PYTHONPATH. Never the
# repository root, from which the sandbox (development tooling) would import.
PRODUCT_PYTHONPATH = str(REPO_ROOT / "plugins")
sys.path.insert(0, PRODUCT_PYTHONPATH)

from psops.settings import (  # noqa: E402
    CELERY_BROKER,
    CELERY_CONCURRENCY,
    CELERY_QUEUE,
    STACK_PORT,
    Setting,
)


class StackError(RuntimeError):
    """A stack problem with one line that says what to do."""


def say(message: str) -> None:
    print(f"psops: {message}", flush=True)


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or REPO_ROOT / ".airflow")


def state_dir() -> Path:
    return airflow_home() / "stack"


def stack_users() -> dict[str, str]:
    """Logins of the stack's simple auth manager: name -> Airflow role. The finance users
    (PSOPS_FINANCE_USERS, default `finance`) see the finance pages and answer approvals,
    which needs the role `user` or above; `engineer` runs DAGs but is not finance."""
    from psops.finance_access import finance_users

    return {"admin": "admin", **dict.fromkeys(finance_users(), "user"), "engineer": "user"}


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
    """`env` (default: ours) with the product's code as the whole PYTHONPATH: there
    `python -m psops...` imports and `-m sandbox` does not."""
    return {**(env or os.environ), "PYTHONPATH": PRODUCT_PYTHONPATH}


def stack_environment() -> dict[str, str]:
    """The environment of every process of the stack and of the commands run on it."""
    return python_env({**os.environ, **read_env_file(), "AIRFLOW_HOME": str(airflow_home())})


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _integer(setting: Setting) -> int:
    try:
        return setting.integer()
    except ValueError as err:
        raise StackError(str(err)) from None


def _api_port() -> int:
    wanted = _integer(STACK_PORT)
    if wanted == 0:
        return free_port()
    if port_taken(wanted):
        raise StackError(f"port {wanted} is already in use; set PSOPS_STACK_PORT to a free "
                         "port (0 = any free port)")
    return wanted


def write_settings(metadata_url: str) -> dict[str, str]:
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
    broker = CELERY_BROKER.text()
    settings = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
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
        queue = CELERY_QUEUE.text()
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
        concurrency = str(_integer(CELERY_CONCURRENCY))
        parts.append(Component("celery-worker", (
            "celery", "worker", "--queues", settings["PSOPS_CELERY_QUEUE"],
            "--concurrency", concurrency)))
    return parts
