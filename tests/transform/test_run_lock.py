"""The transform lock: taken with a timeout, and a run left `running` by a killed
process is marked abandoned by the next run (issue #12, item 4)."""

from __future__ import annotations

import psycopg
import pytest

from psops.run_lock import RunLockTimeout
from psops.settings import TRANSFORM_LOCK_KEY
from psops.transform import steps
from tests.transform.conftest import AS_OF, hris_employee, load_hris, rows


def test_a_transform_run_left_running_is_abandoned_by_the_next_one(wh, raw):
    load_hris(raw, [hris_employee(1, "u@x.com")])
    (dead,) = wh.execute("INSERT INTO ops.transform_runs (as_of, status) "
                         "VALUES (%s, 'running') RETURNING id", (AS_OF,)).fetchone()
    staged = steps.stage(AS_OF, "manual__next")
    assert rows(wh, "SELECT status, finished_at IS NOT NULL, error FROM ops.transform_runs "
                    "WHERE id = %s", dead) == [(
        "abandoned", True, "abandoned: the run's process ended without recording an outcome; "
                           f"found by run {staged.run_id}")]
    assert rows(wh, "SELECT status FROM ops.transform_runs WHERE id = %s",
                staged.run_id) == [("running",)]


def test_the_transform_lock_times_out_with_a_clear_error(wh, warehouse_target, monkeypatch):
    monkeypatch.setenv("PSOPS_RUN_LOCK_TIMEOUT_SECONDS", "0.2")
    with psycopg.connect(warehouse_target.conninfo(), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (TRANSFORM_LOCK_KEY,))
        with pytest.raises(RunLockTimeout, match="transform: another run .* holds the lock"):
            steps.stage(AS_OF, "manual__blocked")
    assert rows(wh, "SELECT count(*) FROM ops.transform_runs") == [(0,)]
