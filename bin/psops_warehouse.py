"""Where the warehouse of a development checkout is, from the command line.

The Airflow connection `warehouse` wins when `AIRFLOW_CONN_WAREHOUSE` is set (URI or
Airflow's JSON form); otherwise the embedded PostgreSQL (bin/psops_embedded_pg.py)
stands in. Local tooling, not product: tasks reach the warehouse through
psops.db (PostgresHook); this script, the tests and the benchmarks build their own
conninfo from a WarehouseTarget.

    .venv/bin/python bin/psops_warehouse.py start     # start the embedded server if needed
    .venv/bin/python bin/psops_warehouse.py stop      # stop it cleanly (fast shutdown)
    .venv/bin/python bin/psops_warehouse.py status
    .venv/bin/python bin/psops_warehouse.py env       # `export AIRFLOW_CONN_WAREHOUSE=...` line
    .venv/bin/python bin/psops_warehouse.py migrate   # apply include/sql/migrations
    .venv/bin/python bin/psops_warehouse.py check     # connect once, one clear line on failure
    .venv/bin/python bin/psops_warehouse.py metadata-url  # Airflow metadata DB of the local stack

Kept free of Airflow imports: `bin/airflow` calls it before every command.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psops_embedded_pg as embedded  # noqa: E402  (puts plugins/ on sys.path)

from psops.settings import METADATA_DB  # noqa: E402

EMBEDDED_DATABASE = "psops"
CONNECT_TIMEOUT_S = 5
CONN_VARIABLE = "AIRFLOW_CONN_WAREHOUSE"
KEPT_OPTIONS = ("sslmode", "application_name")


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
        parts = {"host": self.host, "port": str(self.port), "user": self.user,
                 "dbname": dbname or self.dbname, "connect_timeout": str(CONNECT_TIMEOUT_S),
                 **{key: str(value) for key, value in self.options.items()}}
        if self.password:
            parts["password"] = self.password
        return " ".join(f"{key}='{_escape(value)}'" for key, value in parts.items())

    def _url(self, scheme: str, dbname: str | None) -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"{scheme}://{auth}@{self.host}:{self.port}/{dbname or self.dbname}"

    def sqlalchemy_url(self, dbname: str | None = None) -> str:
        return self._url("postgresql+psycopg", dbname)

    def airflow_uri(self, dbname: str | None = None) -> str:
        return self._url("postgres", dbname)

    def describe(self) -> str:
        """Where it points, without the password (safe for logs)."""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


# -- AIRFLOW_CONN_WAREHOUSE -----------------------------------------------------------

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
            f"{CONN_VARIABLE} is not valid JSON ({err.msg} at char {err.pos}); "
            "set it to postgres://user:password@host:port/dbname or Airflow's JSON form"
        ) from None
    if not isinstance(conn, dict):
        raise WarehouseError(f"{CONN_VARIABLE} JSON must be an object with conn_type, host, ...")
    conn_type = str(conn.get("conn_type", "")).lower()
    if conn_type not in ("postgres", "postgresql"):
        raise WarehouseError(f"{CONN_VARIABLE} has conn_type {conn_type!r}; it must be 'postgres'")
    if not conn.get("host"):
        raise WarehouseError(f"{CONN_VARIABLE} has no host; set host (and port, login, schema)")
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra or "{}")
    return WarehouseTarget(
        host=conn["host"], port=_port(conn.get("port") or 5432),
        user=conn.get("login") or "postgres", password=conn.get("password"),
        dbname=conn.get("schema") or "postgres",
        options={key: value for key, value in extra.items() if key in KEPT_OPTIONS})


def _parse_uri_conn(value: str) -> WarehouseTarget:
    parts = urlsplit(value)
    if parts.scheme not in ("postgres", "postgresql"):
        raise WarehouseError(
            f"{CONN_VARIABLE} must start with postgres:// (got scheme {parts.scheme!r}); "
            "example: postgres://user:password@127.0.0.1:5432/warehouse")
    try:
        port = parts.port
    except ValueError:
        raise WarehouseError(f"{CONN_VARIABLE} has a port that is not a number") from None
    if not parts.hostname:
        raise WarehouseError(f"{CONN_VARIABLE} has no host: postgres://user@HOST:port/dbname")
    options = {}
    for pair in filter(None, parts.query.split("&")):
        key, _, option = pair.partition("=")
        if key in KEPT_OPTIONS:
            options[key] = unquote(option)
    return WarehouseTarget(
        host=parts.hostname, port=port or 5432, user=unquote(parts.username or "postgres"),
        password=unquote(parts.password) if parts.password else None,
        dbname=unquote(parts.path.lstrip("/")) or "postgres", options=options)


def _port(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise WarehouseError(f"{CONN_VARIABLE} port {value!r} is not a number") from None


def is_configured() -> bool:
    """Whether the environment names a warehouse (else the embedded one stands in)."""
    return bool(os.environ.get(CONN_VARIABLE))


def configured_target() -> WarehouseTarget:
    """The warehouse the environment points at: AIRFLOW_CONN_WAREHOUSE, else embedded."""
    if is_configured():
        return parse_airflow_conn(os.environ[CONN_VARIABLE])
    return embedded_target()


def embedded_target() -> WarehouseTarget:
    return WarehouseTarget(host=embedded.HOST, port=embedded.port(), user=embedded.SUPERUSER,
                           password=None, dbname=EMBEDDED_DATABASE, options={})


def start_embedded() -> bool:
    """Start the embedded server with its database. True if this call started it."""
    started = embedded.start()
    if started:
        ensure_database(embedded_target(), EMBEDDED_DATABASE)
    return started


# -- connecting -------------------------------------------------------------------

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
            f"Check {CONN_VARIABLE}, or unset it to use the embedded PostgreSQL") from None


def ensure_database(server: WarehouseTarget, dbname: str) -> WarehouseTarget:
    """`dbname` on `server`, created when missing through the maintenance database
    `postgres` (a server just started may still be coming up: retried for 30 s)."""
    import psycopg
    from psycopg import sql

    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(server.conninfo("postgres"), autocommit=True) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                      (dbname,)).fetchone()
                if not exists:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
                return replace(server, dbname=dbname)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def migrate(target: WarehouseTarget) -> list[str]:
    """Apply the pending migrations to `target`; the versions applied."""
    import psycopg

    from psops.warehouse_migrations import apply_migrations

    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        return apply_migrations(conn)


# -- command line -----------------------------------------------------------------

def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _start() -> str:
    state = "started" if start_embedded() else "already running"
    return f"psops: embedded warehouse {state} at {embedded_target().describe()}"


def _stop() -> str:
    state = "stopped" if embedded.stop() else "was not running"
    return f"psops: embedded warehouse {state}"


def _status() -> str:
    state = "running" if embedded.is_running() else "stopped"
    return f"psops: embedded warehouse {state} ({embedded.data_dir()})"


def _env() -> str:
    """For `eval` in shell scripts: start the embedded server unless one is configured."""
    if is_configured():
        configured_target()  # validate only
        return ""
    if start_embedded():
        print(f"psops: started the embedded warehouse at {embedded_target().describe()} "
              "(it keeps running; `make warehouse-stop` stops it)", file=sys.stderr)
    return f"export {CONN_VARIABLE}={_shell_quote(embedded_target().airflow_uri())}"


def _metadata_url() -> str:
    """Airflow's metadata database for the local stack: a database of its own
    (PSOPS_METADATA_DB) on the warehouse's server, created when missing."""
    server = configured_target()
    if not is_configured():
        start_embedded()
    check_connection(server)
    return ensure_database(server, METADATA_DB.text()).sqlalchemy_url()


def _check() -> str:
    check_connection(configured_target())
    return f"psops: warehouse reachable at {configured_target().describe()}"


def _migrate() -> str:
    target = configured_target()
    check_connection(target)
    applied = migrate(target)
    listed = ": " + ", ".join(applied) if applied else ""
    return f"psops: warehouse {target.describe()} migrated ({len(applied)} new migration(s){listed})"


COMMANDS = {"start": _start, "stop": _stop, "status": _status, "env": _env,
            "metadata-url": _metadata_url, "check": _check, "migrate": _migrate}


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    if command not in COMMANDS:
        print(f"usage: bin/psops_warehouse.py {'|'.join(COMMANDS)} "
              f"(unknown command {command!r})", file=sys.stderr)
        return 2
    try:
        output = COMMANDS[command]()
    except (WarehouseError, embedded.EmbeddedServerError) as err:
        print(f"psops: error: {err}", file=sys.stderr)
        return 1
    if output:
        print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
