"""The Airflow side of the write-back steps (psops.writeback.steps): what a task takes
from its context, and how a step's outcome becomes the task's outcome.

A write that ended `failed` in this try, or a digest the webhook did not take, fails
the task AFTER everything was recorded (outbox rows, `ops.alert_digests`): the result
is still pushed as the task's XCom for the tasks that run anyway, then WritesFailed /
DigestNotDelivered is raised, so Airflow retries the task. A retry sends only the
outbox's sendable rows (lookup first): a confirmed write is never sent again. A write
given up in this try (`dead`, PSOPS_OUTBOX_MAX_ATTEMPTS) fails the task the same way; the
retry does not send it again.

An approval answer that came too late (the batch had expired or was decided) fails the
approval task with AnswerTooLate, without retries: the approver reads why in the task.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from psops.oncall import first_line

XCOM_RETURN_KEY = "return_value"


class WritesFailed(AirflowException):
    """Writes of this try ended `failed` (recorded in ops.outbox); Airflow retries the task."""


class DigestNotDelivered(AirflowException):
    """The webhook did not take the digest (recorded in ops.alert_digests, items not marked
    alerted); Airflow retries the task."""


class AnswerTooLate(AirflowFailException):
    """Finance's answer came after the batch expired or was decided: nothing was recorded
    or applied. Not retried (a retry cannot be in time)."""


def earlier_tries_since(context) -> datetime | None:
    """On a retry (try > 1), when the DAG run began: its start, or `run_after` when later
    (`dags test` sets the start to the logical date). None on the first try."""
    if (getattr(context.get("ti"), "try_number", 1) or 1) <= 1:
        return None
    run = context["dag_run"]
    return max(moment for moment in (getattr(run, "start_date", None),
                                     getattr(run, "run_after", None)) if moment)


def _fail_after_recording(result: dict, ti, error: AirflowException):
    """The task's result stays available to the tasks that run anyway, then the task fails."""
    if ti is not None:
        ti.xcom_push(XCOM_RETURN_KEY, result)
    raise error


def fail_if_writes_failed(result: dict, ti=None) -> dict:
    """The step's result, unless a write of this try failed or was given up (`dead`):
    then WritesFailed."""
    failed, confirmed, waiting = result["failed"], result["confirmed"], result["waiting"]
    dead = result.get("dead") or []
    if failed or dead:
        first = (failed or dead)[0]
        dead_note = f", {len(dead)} given up (ops.outbox status 'dead')" if dead else ""
        waiting_note = f", {len(waiting)} waiting" if waiting else ""
        _fail_after_recording(result, ti, WritesFailed(
            f"{len(failed) + len(dead)} of {len(failed) + len(dead) + len(confirmed)} writes "
            f"failed (ops.outbox status 'failed'{dead_note}{waiting_note}); first: "
            f"{first['description']}: {first_line(first['note'], missing='no answer')}"))
    return result


def fail_if_too_late(result: dict) -> dict:
    """The approval step's result, unless the answer came too late: then AnswerTooLate."""
    if result.get("too_late"):
        raise AnswerTooLate(result["too_late"])
    return result


def fail_if_digest_failed(digest: dict, ti=None) -> dict:
    """The digest step's result, unless the webhook did not take it: then DigestNotDelivered."""
    if digest["status"] == "failed":
        _fail_after_recording(digest, ti, DigestNotDelivered(
            f"alert digest ({digest['items']} items) not delivered to {digest['destination']}: "
            f"{first_line(digest.get('error'), missing='no answer')}"))
    return digest
