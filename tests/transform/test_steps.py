"""The transform's steps (what the DAG's tasks call) and run_transform (what tests and
benchmarks call) share one execution path: a failed step marks its run failed either way."""

from __future__ import annotations

import pytest

from psops.transform import marts, steps
from psops.transform.runner import run_transform
from tests.transform.conftest import AS_OF, erp_job, hris_employee, load_hris, psa_project, rows


@pytest.fixture
def base(wh, raw):
    load_hris(raw, [hris_employee(1, "u@x.com")])
    raw.load("psa_projects", [psa_project(1, "PRJ-00001")])
    raw.load("erp_jobs", [erp_job(1, "PRJ-00001")])
    return raw


def test_a_failed_step_marks_its_run_failed_however_it_was_called(wh, base, monkeypatch):
    def broken_marts(conn, as_of):
        raise RuntimeError("mart SQL broke")

    with monkeypatch.context() as patched:
        patched.setattr(marts, "build_marts", broken_marts)
        with pytest.raises(RuntimeError, match="mart SQL broke"):
            run_transform(AS_OF)  # as tests and benchmarks run it
        staged = steps.stage(AS_OF, "manual__1")  # as the DAG's tasks run it, step by step
        steps.check_quality(AS_OF, staged.run_id)
        with pytest.raises(RuntimeError, match="mart SQL broke"):
            steps.publish(AS_OF, staged.run_id)
    assert rows(wh, "SELECT dag_run_id, status, error FROM ops.transform_runs ORDER BY id") == [
        (None, "failed", "RuntimeError: mart SQL broke"),
        ("manual__1", "failed", "RuntimeError: mart SQL broke")]
    assert rows(wh, "SELECT count(*) FROM marts.process_kpis") == [(0,)]
    # the step retried (by Airflow) once the cause is gone goes on with the same run
    steps.publish(AS_OF, staged.run_id)
    assert steps.summary(staged.run_id).startswith(f"marts published for {AS_OF}: ")
    assert rows(wh, "SELECT status, error FROM ops.transform_runs WHERE id = %s",
                staged.run_id) == [("succeeded", None)]
