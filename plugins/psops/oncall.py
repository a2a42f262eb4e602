"""On call: task failures and missed deadlines, posted to `alerts_webhook`.

* `TaskFailureWebhookNotifier` - the `on_failure_callback` of every psops task
  (psops.dag_defaults.default_args): once a task has failed for good (retries go to
  `on_retry_callback`), one chat message with the DAG, task, run, try, the first line
  of the error and a link to the task's log (`[api] base_url`). It never raises: a
  broken webhook is logged as a warning and never masks the task's own error.
* `deadline_missed` - the async callback of the DAGs' deadline alerts (runs in the
  triggerer): "marts for <date> not published by <time>" (psops_transform) or
  "<SYSTEM> data for <date> not loaded by <time>" (psops_ingest_*).

Both post through psops.writeback.alerts.post_message (the webhook path is a secret
and never logged). Import-light: DAG files import this module at parse time, the
HTTP hook is imported only when a message is sent.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from airflow.sdk import AsyncCallback, BaseNotifier, DeadlineAlert, DeadlineReference

from psops.dag_defaults import deadline_alerts_enabled, marts_deadline, sources_due

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 300
# The failure message waits less on a broken webhook than the digest: the task's
# process is finishing.
NOTIFY_TIMEOUT = (5.0, 20.0)
NOTIFY_MAX_ATTEMPTS = 3


NO_EXCEPTION = "no exception recorded (failed outside the task, e.g. killed or timed out)"


def first_line(error, missing: str = NO_EXCEPTION) -> str:
    """`Type: first line of the message` for an exception, the first line of a text, or
    `missing` when there is none; at most MAX_ERROR_CHARS."""
    lines = str(error).strip().splitlines() if error is not None else []
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    else:
        text = lines[0] if lines else missing
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 1] + "…"


def failure_message(context) -> dict:
    """The chat message for a failed task instance (`text` + one section block)."""
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", None) or getattr(context.get("task"), "task_id", "?")
    run_id = getattr(ti, "run_id", None) or context.get("run_id") or "?"
    map_index = getattr(ti, "map_index", -1)
    task = task_id if map_index is None or map_index < 0 else f"{task_id}[{map_index}]"
    try_number = getattr(ti, "try_number", None)
    error = first_line(context.get("exception"))
    try:
        log_url = ti.log_url if ti is not None else None
    except Exception:  # noqa: BLE001 - a missing [api] base_url must not stop the message
        log_url = None
    text = f"psops task failed: {dag_id}.{task} (run {run_id}, try {try_number}): {error}"
    lines = [f"*psops task failed*: `{dag_id}` / `{task}`",
             f"run `{run_id}`, try {try_number}",
             f"error: {error}"]
    if log_url:
        lines.append(f"log: <{log_url}|{log_url}>")
    return {"text": text, "blocks": [{"type": "section",
                                      "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]}


def post_alert(message: dict, **hook_kwargs) -> str:
    """Post one message to alerts_webhook (the one posting path); returns where it went."""
    from psops.writeback.alerts import post_message, webhook_hook

    return post_message(message, webhook_hook(**hook_kwargs))


class TaskFailureWebhookNotifier(BaseNotifier):
    """Posts a task's final failure to `alerts_webhook`; never raises."""

    def notify(self, context) -> None:
        try:
            message = failure_message(context)
            where = post_alert(message, timeout=NOTIFY_TIMEOUT, max_attempts=NOTIFY_MAX_ATTEMPTS)
            self.log.info("failure posted to %s: %s", where, message["text"])
        except Exception as err:  # noqa: BLE001 - must never mask the task's own error
            self.log.warning("could not post the task failure to alerts_webhook: %s",
                             first_line(err))


# -- deadline alerts ------------------------------------------------------------------

def _moment(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _utc(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "the deadline"


def deadline_message(kind: str, system: str | None, context: dict) -> dict:
    """The chat message for a missed deadline; `context` is what the scheduler hands the
    callback: {"dag_run": {dag_id, dag_run_id, logical_date, run_after, state, ...},
    "deadline": {"deadline_time": ...}}."""
    run = context.get("dag_run") or {}
    deadline = _moment((context.get("deadline") or {}).get("deadline_time"))
    day_of = _moment(run.get("logical_date")) or _moment(run.get("run_after"))
    day = day_of.astimezone(UTC).date().isoformat() if day_of else "?"
    where = f"{run.get('dag_id', '?')} run {run.get('dag_run_id', '?')}, {run.get('state', '?')}"
    if kind == "sources":
        text = (f"psops: {str(system or '?').upper()} data for {day} not loaded by {_utc(deadline)} "
                f"({where}): the marts for {day} are late or built without it")
    else:
        text = f"psops: marts for {day} not published by {_utc(deadline)} ({where})"
    return {"text": text, "blocks": [{"type": "section",
                                      "text": {"type": "mrkdwn", "text": text}}]}


async def deadline_missed(kind: str = "marts", system: str | None = None,
                          context: dict | None = None) -> str:
    """Deadline-alert callback (AsyncCallback, runs in the triggerer). Not posted when the
    run has succeeded meanwhile (a run created after its deadline, e.g. a backfill, that
    finished before the scheduler looked). Raises when the message could not be
    delivered, so the callback shows as failed."""
    message = deadline_message(kind, system, context or {})
    if ((context or {}).get("dag_run") or {}).get("state") == "success":
        log.info("deadline passed, but the run has succeeded since; not posted: %s", message["text"])
        return f"not posted (run succeeded): {message['text']}"
    where = await asyncio.to_thread(post_alert, message)
    log.info("deadline alert posted to %s: %s", where, message["text"])
    return message["text"]


def marts_deadline_alert() -> DeadlineAlert | None:
    """psops_transform: a run's marts published within PSOPS_MARTS_DEADLINE_MINUTES of
    its being queued (asset-triggered and cut-off runs alike); None when switched off."""
    if not deadline_alerts_enabled():
        return None
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=marts_deadline(),
                         callback=AsyncCallback(deadline_missed, kwargs={"kind": "marts"}),
                         name="marts_published")


def sources_deadline_alert(system: str) -> DeadlineAlert | None:
    """psops_ingest_<system>: the run for day D complete by D 00:00 UTC +
    PSOPS_SOURCES_DUE_HOURS (the daily runs' logical date is midnight of D); None when
    switched off."""
    if not deadline_alerts_enabled():
        return None
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_LOGICAL_DATE, interval=sources_due(),
                         callback=AsyncCallback(deadline_missed,
                                                kwargs={"kind": "sources", "system": system}),
                         name=f"{system}_sources_loaded")
