"""What every psops DAG shares: owner, retries, a short retry delay, timeouts, the
failure notifier, the as-of date. The values come from psops.settings (environment
settings, read when a DAG file is parsed).

Kept import-light: DAG files import it at parse time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from psops.settings import (
    DAGRUN_TIMEOUT_MINUTES,
    DEADLINE_ALERTS,
    MARTS_DEADLINE_MINUTES,
    OWNER,
    RETRIES,
    RETRY_DELAY_SECONDS,
    SOURCES_DUE_HOURS,
    TASK_TIMEOUT_MINUTES,
)

START_DATE = datetime(2025, 1, 1, tzinfo=UTC)


def retry_delay() -> timedelta:
    """Short by default; `PSOPS_RETRY_DELAY_SECONDS` shortens it further for failure-path tests."""
    return RETRY_DELAY_SECONDS.seconds()


def task_timeout() -> timedelta:
    """`execution_timeout` of every task: one try running longer is failed (and retried)."""
    return TASK_TIMEOUT_MINUTES.minutes()


def dagrun_timeout(waits_for: timedelta | None = None) -> timedelta:
    """`dagrun_timeout` of every DAG, plus `waits_for` (e.g. the approval DAG's wait
    for a person)."""
    return DAGRUN_TIMEOUT_MINUTES.minutes() + (waits_for or timedelta(0))


def marts_deadline() -> timedelta:
    """How long after a psops_transform run is queued its marts must be published."""
    return MARTS_DEADLINE_MINUTES.minutes()


def sources_due() -> timedelta:
    """By when after midnight UTC of day D an ingest run of day D must be complete."""
    return SOURCES_DUE_HOURS.hours()


def deadline_alerts_enabled() -> bool:
    """bin/airflow turns them off for `airflow dags test`: deadlines are the scheduler's
    business, and Airflow 3.3.2's `dags test` fails a DAG run that carries one when it
    marks the run successful (it looks the alerts up by id, and under `dags test` they
    have none)."""
    return DEADLINE_ALERTS.enabled()


def default_args() -> dict:
    from psops.oncall import TaskFailureWebhookNotifier  # imports airflow.sdk only

    return {
        "owner": OWNER,
        "retries": RETRIES.integer(),
        "retry_delay": retry_delay(),
        "execution_timeout": task_timeout(),
        "on_failure_callback": [TaskFailureWebhookNotifier()],
    }


def dag_arguments(waits_for: timedelta | None = None) -> dict:
    """The `@dag` arguments every psops DAG shares: start date, no catch-up, the default
    task arguments and the run timeout (plus `waits_for`, e.g. a wait for a person)."""
    return {"start_date": START_DATE, "catchup": False, "default_args": default_args(),
            "dagrun_timeout": dagrun_timeout(waits_for)}


def as_of_date(context) -> date:
    """The run's as-of date (warehouse contract): the UTC date of its logical date,
    or of `run_after` when the run has none (Asset-triggered runs)."""
    moment = context.get("logical_date") or context["dag_run"].run_after
    return moment.astimezone(UTC).date()
