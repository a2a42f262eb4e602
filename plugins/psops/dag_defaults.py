"""What every psops DAG shares: owner, retries, a short retry delay, the as-of date.

Kept import-light: DAG files import it at parse time.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

OWNER = "psops-data"
DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY_S = 30


def retry_delay() -> timedelta:
    """Short by default; `PSOPS_RETRY_DELAY_SECONDS` shortens it further for failure-path tests."""
    return timedelta(seconds=float(os.environ.get("PSOPS_RETRY_DELAY_SECONDS", DEFAULT_RETRY_DELAY_S)))


def default_args() -> dict:
    return {
        "owner": OWNER,
        "retries": int(os.environ.get("PSOPS_RETRIES", DEFAULT_RETRIES)),
        "retry_delay": retry_delay(),
    }


START_DATE = datetime(2025, 1, 1, tzinfo=UTC)


def as_of_date(context) -> date:
    """The run's as-of date (warehouse contract): the UTC date of its logical date,
    or of `run_after` when the run has none (Asset-triggered runs)."""
    moment = context.get("logical_date") or context["dag_run"].run_after
    return moment.astimezone(UTC).date()
