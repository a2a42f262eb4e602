"""Which Airflow runs produced the numbers on a page, as links into the Airflow UI.

The marts of an as-of date come from the `psops_transform` run whose as-of date
(the UTC date of its logical date, or of `run_after` when it has none: the
warehouse contract) is that date; the raw data it read came from the latest
`psops_ingest_*` runs that finished before it. Runs are looked up in Airflow's
own metadata database (the api-server's), so every link points at a run the UI
knows. When the warehouse lets the analyst read `ops.transform_runs`, its
`dag_run_id` pins the exact run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import quote

from psops import catalogue

log = logging.getLogger(__name__)

TRANSFORM_DAG = "psops_transform"
TRANSFORM_TASKS = ("stage_records", "quality_gates", "publish_marts", "summary")


@dataclass
class RunLink:
    dag_id: str
    run_id: str
    state: str
    when: datetime | None
    url: str
    tasks: list[tuple[str, str]] = field(default_factory=list)   # (task_id, url)


@dataclass
class Provenance:
    transform: RunLink | None
    ingests: list[RunLink]
    note: str | None = None


def run_url(ui_base: str, dag_id: str, run_id: str) -> str:
    return f"{ui_base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def task_url(ui_base: str, dag_id: str, run_id: str, task_id: str) -> str:
    return f"{run_url(ui_base, dag_id, run_id)}/tasks/{quote(task_id, safe='')}"


def _run_as_of(run) -> date | None:
    moment = run.logical_date or run.run_after
    return moment.date() if moment else None


def find_provenance(ui_base: str, as_of: date, pinned_run_ids: list[str] | None = None) -> Provenance:
    """Links to the transform run of `as_of` and the ingest runs before it (best effort:
    a metadata database that cannot be read gives a note, never an error page)."""
    try:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            runs = session.scalars(
                select(DagRun).where(DagRun.dag_id == TRANSFORM_DAG)
                .order_by(DagRun.run_after.desc()).limit(500)
            ).all()
            candidates = [r for r in runs if _run_as_of(r) == as_of]
            chosen = None
            for run_id in pinned_run_ids or ():
                chosen = next((r for r in candidates if r.run_id == run_id), None)
                if chosen:
                    break
            if chosen is None:
                succeeded = [r for r in candidates if str(r.state) in ("success", "DagRunState.SUCCESS")]
                chosen = (succeeded or candidates or [None])[0]
            transform = _link(ui_base, chosen, TRANSFORM_TASKS) if chosen else None
            cutoff = (chosen.end_date or chosen.start_date) if chosen else None
            ingests = []
            for dag_id, task_ids in catalogue.ingest_tasks().items():
                query = select(DagRun).where(DagRun.dag_id == dag_id)
                if cutoff is not None:
                    query = query.where(DagRun.end_date <= cutoff)
                run = session.scalars(query.order_by(DagRun.run_after.desc()).limit(1)).first()
                if run is not None:
                    ingests.append(_link(ui_base, run, task_ids))
        note = None if transform else (
            f"Airflow has no {TRANSFORM_DAG} run for {as_of.isoformat()} "
            "(the marts may have been built outside this Airflow).")
        return Provenance(transform, ingests, note)
    except Exception as err:  # noqa: BLE001 - links are a convenience, the figures are not
        log.warning("psops UI: could not read Airflow runs for provenance links: %s", err)
        return Provenance(None, [], "Airflow's run history could not be read for links.")


def _link(ui_base: str, run, task_ids: tuple[str, ...]) -> RunLink:
    state = getattr(run.state, "value", run.state)
    return RunLink(
        dag_id=run.dag_id, run_id=run.run_id, state=str(state),
        when=run.end_date or run.start_date or run.run_after,
        url=run_url(ui_base, run.dag_id, run.run_id),
        tasks=[(t, task_url(ui_base, run.dag_id, run.run_id, t)) for t in task_ids],
    )
