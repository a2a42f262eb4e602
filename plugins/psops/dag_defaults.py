"""What every psops DAG shares: owner, retries, a short retry delay, timeouts, the
failure notifier, the ERP pool, the as-of date.

Kept import-light: DAG files import it at parse time, and bin/airflow reads the pool
from it (`python -c 'from psops.dag_defaults import ERP_POOL, ERP_POOL_SLOTS'`) without
importing Airflow.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

OWNER = "psops-data"
DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY_S = 30
DEFAULT_TASK_TIMEOUT_MIN = 60
DEFAULT_DAGRUN_TIMEOUT_MIN = 180
DEFAULT_MARTS_DEADLINE_MIN = 120
DEFAULT_SOURCES_DUE_HOURS = 6

# Every task that sends requests to the ERP takes a slot of this pool: the ERP throttles
# a client with more than 2 requests in flight, whichever DAG they come from.
ERP_POOL = "erp_api"
ERP_POOL_SLOTS = 2


def _minutes(name: str, default: float) -> timedelta:
    return timedelta(minutes=float(os.environ.get(name, default)))


def retry_delay() -> timedelta:
    """Short by default; `PSOPS_RETRY_DELAY_SECONDS` shortens it further for failure-path tests."""
    return timedelta(seconds=float(os.environ.get("PSOPS_RETRY_DELAY_SECONDS", DEFAULT_RETRY_DELAY_S)))


def task_timeout() -> timedelta:
    """`execution_timeout` of every task (`PSOPS_TASK_TIMEOUT_MINUTES`, default 60): one try
    running longer is failed (and retried)."""
    return _minutes("PSOPS_TASK_TIMEOUT_MINUTES", DEFAULT_TASK_TIMEOUT_MIN)


def dagrun_timeout(waits_for: timedelta | None = None) -> timedelta:
    """`dagrun_timeout` of every DAG (`PSOPS_DAGRUN_TIMEOUT_MINUTES`, default 180), plus
    `waits_for` (e.g. the approval DAG's wait for a person)."""
    return _minutes("PSOPS_DAGRUN_TIMEOUT_MINUTES", DEFAULT_DAGRUN_TIMEOUT_MIN) \
        + (waits_for or timedelta(0))


def marts_deadline() -> timedelta:
    """How long after a psops_transform run is queued its marts must be published
    (`PSOPS_MARTS_DEADLINE_MINUTES`, default 120)."""
    return _minutes("PSOPS_MARTS_DEADLINE_MINUTES", DEFAULT_MARTS_DEADLINE_MIN)


def sources_due() -> timedelta:
    """By when after midnight UTC of day D an ingest run of day D must be complete
    (`PSOPS_SOURCES_DUE_HOURS`, default 6 = 06:00 UTC)."""
    return timedelta(hours=float(os.environ.get("PSOPS_SOURCES_DUE_HOURS", DEFAULT_SOURCES_DUE_HOURS)))


def deadline_alerts_enabled() -> bool:
    """`PSOPS_DEADLINE_ALERTS` (default `on`). bin/airflow turns them off for
    `airflow dags test`: deadlines are the scheduler's business, and Airflow 3.3.2's
    `dags test` fails a DAG run that carries one when it marks the run successful
    (it looks the alerts up by id, and under `dags test` they have none)."""
    return os.environ.get("PSOPS_DEADLINE_ALERTS", "on").strip().lower() not in {
        "off", "false", "0", "no"}


def default_args() -> dict:
    from psops.oncall import TaskFailureWebhookNotifier  # imports airflow.sdk only

    return {
        "owner": OWNER,
        "retries": int(os.environ.get("PSOPS_RETRIES", DEFAULT_RETRIES)),
        "retry_delay": retry_delay(),
        "execution_timeout": task_timeout(),
        "on_failure_callback": [TaskFailureWebhookNotifier()],
    }


START_DATE = datetime(2025, 1, 1, tzinfo=UTC)


def as_of_date(context) -> date:
    """The run's as-of date (warehouse contract): the UTC date of its logical date,
    or of `run_after` when the run has none (Asset-triggered runs)."""
    moment = context.get("logical_date") or context["dag_run"].run_after
    return moment.astimezone(UTC).date()

