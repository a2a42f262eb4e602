"""Every setting psops reads from the environment, every path, lock key and fixed name:
the one place each is defined.

A setting is read when asked for (`RETRIES.integer()`), not at import, so a test or a
process that changes the environment sees the change. Kept free of Airflow imports:
DAG files, `bin/airflow` and the command-line tools import it.

`python -m psops.settings` prints the table of settings (the README's list comes from it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

# -- paths --------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
INCLUDE_DIR = REPO_ROOT / "include"
SQL_DIR = INCLUDE_DIR / "sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
CONNECTORS_DIR = INCLUDE_DIR / "connectors"
QUALITY_RULES_PATH = INCLUDE_DIR / "quality_rules.yaml"
SUITES_DIR = REPO_ROOT / "expectations"

# -- Airflow names ------------------------------------------------------------------
# The source systems' connection ids and raw Asset URIs are in their connector specs
# (include/connectors/*.yaml), read through psops.catalogue.

WAREHOUSE_CONN_ID = "warehouse"
ALERTS_WEBHOOK_CONN_ID = "alerts_webhook"
MARTS_ASSET_URI = "psops://marts"
OWNER = "psops-data"
# The pools guarding APIs that allow few requests in flight (the ERP's) are in the
# connector specs: psops.catalogue.request_pools().

# -- PostgreSQL advisory lock keys (one namespace: keep them distinct) ----------------

MIGRATION_LOCK_KEY = 7_314_159_265  # one migrator at a time
TRANSFORM_LOCK_KEY = 7_314_159_266  # transform steps never interleave
OUTBOX_LOCK_KEY = 7_314_159_301  # one outbox applier at a time
# One lock per ingest stream, in the two-key form (a key space apart from the keys
# above): (INGEST_STREAM_LOCK_CLASS, hashtext('<system>.<stream>')).
INGEST_STREAM_LOCK_CLASS = 7_314
# (RAW_TABLE_LOCK_CLASS, hashtext('<raw table>')): one creator of a raw table at a time
RAW_TABLE_LOCK_CLASS = 7_315


# -- environment settings -----------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """An environment variable: its name, its default and what it means."""

    name: str
    default: str
    meaning: str

    def text(self) -> str:
        """The value, stripped; the default when the variable is not set. Set but empty
        stays empty (e.g. a PSOPS_FINANCE_USERS that names nobody is an error, not the
        default)."""
        value = os.environ.get(self.name)
        return self.default if value is None else value.strip()

    def is_set(self) -> bool:
        return bool(os.environ.get(self.name, "").strip())

    def number(self) -> float:
        try:
            return float(self.text())
        except ValueError:
            raise ValueError(f"{self.name}={self.text()!r} is not a number") from None

    def integer(self) -> int:
        return int(self.number())

    def decimal(self) -> Decimal:
        return Decimal(str(self.number()))

    def minutes(self) -> timedelta:
        return timedelta(minutes=self.number())

    def seconds(self) -> timedelta:
        return timedelta(seconds=self.number())

    def hours(self) -> timedelta:
        return timedelta(hours=self.number())

    def enabled(self) -> bool:
        return self.text().lower() not in {"off", "false", "0", "no"}

    def path(self) -> Path:
        """The value as a path; a relative one is taken from the repository's root."""
        return REPO_ROOT / Path(self.text() or self.default).expanduser()


SETTINGS: dict[str, Setting] = {}


def _setting(name: str, default: str, meaning: str) -> Setting:
    setting = Setting(name, default, meaning)
    SETTINGS[name] = setting
    return setting


# Schedules
INGEST_SCHEDULE = _setting(
    "PSOPS_INGEST_SCHEDULE", "@daily",
    "schedule of the `psops_ingest_*` DAGs (cron or preset); `none`: only triggered runs")
TRANSFORM_CUTOFF_CRON = _setting(
    "PSOPS_TRANSFORM_CUTOFF_CRON", "0 6 * * *",
    "daily cut-off (UTC) at which psops_transform runs on whatever sources delivered")

# Retries, timeouts, deadlines
RETRIES = _setting("PSOPS_RETRIES", "2", "retries of every task")
RETRY_DELAY_SECONDS = _setting("PSOPS_RETRY_DELAY_SECONDS", "30", "delay between task retries")
TASK_TIMEOUT_MINUTES = _setting(
    "PSOPS_TASK_TIMEOUT_MINUTES", "60", "execution_timeout of every task (one try)")
DAGRUN_TIMEOUT_MINUTES = _setting(
    "PSOPS_DAGRUN_TIMEOUT_MINUTES", "180",
    "dagrun_timeout of every DAG (the approval DAG adds its approval timeout)")
MARTS_DEADLINE_MINUTES = _setting(
    "PSOPS_MARTS_DEADLINE_MINUTES", "120",
    "a psops_transform run not done this long after it was queued alerts on call")
SOURCES_DUE_HOURS = _setting(
    "PSOPS_SOURCES_DUE_HOURS", "6",
    "an ingest run of day D not done by this many hours after midnight UTC alerts on call")
RUN_LOCK_TIMEOUT_SECONDS = _setting(
    "PSOPS_RUN_LOCK_TIMEOUT_SECONDS", "600",
    "how long an ingest stream run (or a transform step) waits for another run of the same "
    "stream (or transform) to release its lock before it fails")
DEADLINE_ALERTS = _setting(
    "PSOPS_DEADLINE_ALERTS", "on",
    "`off` leaves the DAGs' deadline alerts out (bin/airflow does so for `dags test`)")

# Source APIs
HTTP_MAX_ATTEMPTS = _setting(
    "PSOPS_HTTP_MAX_ATTEMPTS", "8", "tries of one request on throttling, 5xx and lost answers")
HTTP_BACKOFF_BASE_SECONDS = _setting(
    "PSOPS_HTTP_BACKOFF_BASE_SECONDS", "0.5", "first back-off of a retried request (doubles)")

# Quality gates
DATA_DOCS_DIR = _setting(
    "PSOPS_DATA_DOCS_DIR", "build/data_docs",
    "folder of the Great Expectations Data Docs (written by the transform, served by the UI)")

# Maintenance
RAW_RETENTION_DAYS = _setting(
    "PSOPS_RAW_RETENTION_DAYS", "90",
    "psops_maintenance deletes a raw record version loaded more than this many days ago "
    "unless it is its record's latest")

# Write-back and approval
APPROVAL_THRESHOLD = _setting(
    "PSOPS_APPROVAL_THRESHOLD", "1000",
    "a project's new corrections worth more than this, with those approved automatically "
    "within PSOPS_APPROVAL_WINDOW_DAYS, wait for finance")
APPROVAL_WINDOW_DAYS = _setting(
    "PSOPS_APPROVAL_WINDOW_DAYS", "7",
    "rolling window (days) of a project's automatically approved corrections that count "
    "towards PSOPS_APPROVAL_THRESHOLD")
APPROVAL_TIMEOUT_MINUTES = _setting(
    "PSOPS_APPROVAL_TIMEOUT_MINUTES", str(24 * 60),
    "an approval left unanswered this long expires as rejected")
OUTBOX_MAX_ATTEMPTS = _setting(
    "PSOPS_OUTBOX_MAX_ATTEMPTS", "5",
    "sends of one write before it is given up as `dead` (never retried; listed in the "
    "digest and the finance UI)")
FINANCE_USERS = _setting(
    "PSOPS_FINANCE_USERS", "finance",
    "Airflow users (comma-separated) who see the finance pages and answer approvals")

# Local tooling (embedded warehouse, local stack, demo)
WAREHOUSE_DIR = _setting(
    "PSOPS_WAREHOUSE_DIR", ".warehouse",
    "data folder of the embedded PostgreSQL (when AIRFLOW_CONN_WAREHOUSE is unset)")
WAREHOUSE_PORT = _setting(
    "PSOPS_WAREHOUSE_PORT", "", "port of the embedded PostgreSQL (default 54329, or a free one)")
METADATA_DB = _setting(
    "PSOPS_METADATA_DB", "psops_airflow",
    "Airflow's metadata database of the local stack, on the warehouse's server")
STACK_PORT = _setting("PSOPS_STACK_PORT", "8080", "port of the local stack's api-server")
STACK_START_TIMEOUT_SECONDS = _setting(
    "PSOPS_STACK_START_TIMEOUT_SECONDS", "240", "how long `bin/stack up` waits for health")
CELERY_BROKER = _setting(
    "PSOPS_CELERY_BROKER", "",
    "a Celery broker URL: the local stack runs the CeleryExecutor and a worker")
CELERY_QUEUE = _setting("PSOPS_CELERY_QUEUE", "psops", "the Celery queue of the local stack")
CELERY_CONCURRENCY = _setting(
    "PSOPS_CELERY_CONCURRENCY", "4", "task slots of the local stack's Celery worker")
DEMO_TIMEOUT_SECONDS = _setting(
    "PSOPS_DEMO_TIMEOUT_SECONDS", "900", "how long `make demo` waits for the pipeline")

# Tests
TEST_REDIS_URL = _setting(
    "PSOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0",
    "the Redis of the stack test (tests/stack); skipped when none answers")
SCREENSHOT_DIR = _setting(
    "PSOPS_SCREENSHOT_DIR", "",
    "where the browser test saves its screenshots (default a temporary folder; "
    "`make screenshots` sets docs/screenshots)")


def settings_table() -> str:
    """The settings as a Markdown table (name, default, meaning)."""
    rows = [f"| `{setting.name}` | {f'`{setting.default}`' if setting.default else 'unset'} "
            f"| {setting.meaning} |" for setting in SETTINGS.values()]
    return "\n".join(["| setting | default | meaning |", "|---|---|---|", *rows])


if __name__ == "__main__":
    print(settings_table())
