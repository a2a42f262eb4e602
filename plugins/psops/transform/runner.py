"""The whole transform for one as-of date, for tests, benchmarks and scenarios: the
steps the psops_transform DAG's tasks call (psops.transform.steps), in the same order,
on the Airflow connection `warehouse`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from psops.transform import steps
from psops.transform.quality import GateReport


@dataclass
class TransformResult:
    run_id: int
    gates: GateReport
    mart_counts: dict[str, int]
    summary: str


def run_transform(as_of: date, *, dag_run_id: str | None = None, with_gx: bool = False,
                  docs_dir: Path | None = None) -> TransformResult:
    """Stage, quality gates, publish, summary (raises CriticalGateFailed; a failed step
    marks its run failed)."""
    staged = steps.stage(as_of, dag_run_id)
    gates = steps.check_quality(as_of, staged.run_id, with_gx=with_gx, docs_dir=docs_dir)
    mart_counts = steps.publish(as_of, staged.run_id)
    return TransformResult(staged.run_id, gates, mart_counts, steps.summary(staged.run_id))
