"""When psops_transform runs: on fresh data from every system, or at the daily cut-off.

The DAG is scheduled on all four raw Assets (each ingest DAG's `publish` updates its
own), *or* at the cut-off time (`PSOPS_TRANSFORM_CUTOFF_CRON`, UTC). A run started by
the four Asset events, by hand or through the REST API always goes ahead. A cut-off run
is the safety net for a slow or broken system: it goes ahead only when some source has
new data the marts do not include yet, and names the sources that have delivered
nothing for its as-of date (the marts then use their last good data). It skips when
nothing was ever ingested or when the last published marts already include every
source's latest load.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime

from psops.catalogue import system_names

log = logging.getLogger(__name__)

CUTOFF_RUN_TYPE = "scheduled"

LATEST_INGESTS_SQL = """
SELECT system, max(finished_at) AS finished_at
FROM ops.ingest_runs
WHERE status = 'succeeded'
GROUP BY system
"""

LATEST_PUBLISH_SQL = """
SELECT max(started_at) FROM ops.transform_runs WHERE status = 'succeeded'
"""


@dataclass(frozen=True)
class SourcesDecision:
    run: bool
    reason: str
    stale: tuple[str, ...] = ()


def decide(run_type: str, as_of: date, latest_ingests: dict[str, datetime | None],
           latest_publish: datetime | None) -> SourcesDecision:
    """Whether a transform run goes ahead (see the module docstring)."""
    stale = tuple(system for system in system_names()
                  if latest_ingests.get(system) is None
                  or latest_ingests[system].astimezone(UTC).date() < as_of)
    if run_type != CUTOFF_RUN_TYPE:
        return SourcesDecision(True, f"{run_type} run: always goes ahead", stale)
    loaded = [moment for moment in latest_ingests.values() if moment is not None]
    if not loaded:
        return SourcesDecision(False, "cut-off run: nothing has been ingested yet")
    if latest_publish is not None and max(loaded) < latest_publish:
        return SourcesDecision(
            False, f"cut-off run: the marts published at {latest_publish:%Y-%m-%d %H:%M} UTC "
                   "already include every source's latest load")
    reason = "cut-off run: new data since the last marts"
    if stale:
        reason += (f"; no data for {as_of} yet from {', '.join(stale)} "
                   "(their last good load is used)")
    return SourcesDecision(True, reason, stale)


def read_state(conn) -> tuple[dict[str, datetime | None], datetime | None]:
    """The latest succeeded ingest of each system, and the latest published marts."""
    latest = dict.fromkeys(system_names())
    latest.update(dict(conn.execute(LATEST_INGESTS_SQL).fetchall()))
    (latest_publish,) = conn.execute(LATEST_PUBLISH_SQL).fetchone()
    return latest, latest_publish


def sources_ready(run_type: str, as_of: date) -> bool:
    """The DAG's short-circuit step: decide from the warehouse, log the decision (a
    warning when it goes ahead without some sources), return whether to go ahead."""
    from psops.db import warehouse_connection

    with warehouse_connection(autocommit=True) as conn:
        latest_ingests, latest_publish = read_state(conn)
    decision = decide(run_type, as_of, latest_ingests, latest_publish)
    (log.warning if decision.stale and decision.run else log.info)(
        "psops_transform %s: %s", "goes ahead" if decision.run else "skipped", decision.reason)
    return decision.run
